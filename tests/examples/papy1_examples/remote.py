"""A task on two remote workers only (worker_num=0).

As in grid.py, PAPY1_REMOTE may name the server's address (default:
localhost, as the original).
"""
# ruff: noqa: UP031, B905 -- the original's %-formatting and zip(), kept as they were
import os

from imap import IMap, imports

HOST = os.environ.get("PAPY1_REMOTE", "localhost")


@imports(['os'])
def hello_remote(element,):
    return "got%s" % element


ELEMENTS = (0, 1, 2, 3, 4)

if __name__ == "__main__":
    result_iterator = IMap(hello_remote, ELEMENTS, worker_num=0,
                           worker_remote=[(HOST, 2)])
    results = tuple(result_iterator)
    print(results)

"""A piper on remote workers: two connections to an RPyC server.

The original expected a classic RPyC server on localhost's default port;
the one change of this port: PAPY1_REMOTE may name another address
(the test starts a server of its own there).
"""
import os

from imap import IMap, imports
from papy import Piper

HOST = os.environ.get("PAPY1_REMOTE", "localhost")


@imports(['os'])
def hello_from(inbox):
    word = inbox[0]
    up_pid = os.getpid()
    return (word, up_pid)


if __name__ == "__main__":
    somehost = IMap(worker_num=0, worker_remote=[(HOST, 2)])

    remote_piper = Piper(hello_from, parallel=somehost)
    remote_piper([['hello', 'world', 'hi', 'folks']])
    remote_piper.start()

    print(list(remote_piper))

"""Remote workers: an imap-server on this machine, two connections to it.

``imap.embedded.local(2)`` starts ``python -m imap.server`` on a free loopback
port and yields ``[("127.0.0.1:PORT", 2)]`` for ``worker_remote``; leaving
the ``with`` block stops the server. Against real hosts, start
``imap-server`` there and list them instead (see doc/remote.rst).
"""

import os

from imap import IMap
from imap.embedded import local


def square(x):
    return x * x


def describe(x):
    # Runs on the server: its process id differs from ours.
    return f"{x:4d} computed in process {'here' if os.getpid() == MAIN_PID else 'remote'}"


MAIN_PID = os.getpid()

if __name__ == "__main__":
    with local(2) as remote:
        print(f"imap-server at {remote[0][0]}, {remote[0][1]} remote workers")
        with IMap(worker_num=0, worker_remote=remote) as m:
            squares = m.add_task(square, range(10))
            lines = m.add_task(describe, squares)
            m.start()
            results = list(lines)
        for line in results:
            print(line)
        expected = [f"{x * x:4d} computed in process remote" for x in range(10)]
        print(f"done: {len(results)} results, as expected: {results == expected}")

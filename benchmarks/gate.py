"""Hold an IMap's worker processes at the start line until the clock starts.

The imap adapter must keep the start-up of the pool out of the timed part,
like every other system's, without changing what the IMap is given: its
options stay exactly the row's (nothing for the default-settings rows) and
its input stays the workload's own object (a ``range`` stays a ``range``, a
generator a generator), because the engine may treat them differently.

So the gate is not on the input but on the workers. Each worker process
runs :func:`hold` as its initializer: it connects to a socket the parent
listens on (that connection says "ready") and waits there for one byte
("go"). The parent starts the IMap, waits until every worker is ready
(:meth:`WorkerGate.wait_ready`: that is the start-up), then starts the clock
and opens the gate (:meth:`WorkerGate.open`). Meanwhile the Feeder may already
have drawn and sent tasklets; they wait in the workers' pipes and are run
after "go", as on a cold start but without the start-up.

Only the standard library is imported here: workers import this module to
unpickle the initializer.
"""

import socket
import time

CONNECT_TIMEOUT = 10.0   # seconds a worker tries to reach the gate
HOLD_TIMEOUT = 300.0     # seconds a worker waits for "go" before running anyway


def hold(port):
    """Worker initializer: report ready on ``port``, then wait for "go".

    A worker that cannot reach the gate (it is already open and closed, e.g.
    for a worker that replaced a lost one) runs at once.
    """
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=CONNECT_TIMEOUT) as conn:
            conn.settimeout(HOLD_TIMEOUT)
            conn.recv(1)
    except OSError:
        pass


class WorkerGate:
    """The parent's side: a loopback listener, one connection per worker."""

    def __init__(self, workers):
        self.workers = workers
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=max(8, workers))
        self.port = self._listener.getsockname()[1]
        self._conns = []

    def wait_ready(self, timeout):
        """Block until every worker has connected; TimeoutError after ``timeout``."""
        deadline = time.monotonic() + timeout
        while len(self._conns) < self.workers:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"only {len(self._conns)} of {self.workers} workers "
                                   f"reached the start line within {timeout:g} s")
            self._listener.settimeout(left)
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            self._conns.append(conn)

    def open(self):
        """Send "go" to every waiting worker and close the gate (idempotent)."""
        for conn in self._conns:
            try:
                conn.sendall(b"g")
            except OSError:
                pass
            conn.close()
        self._conns = []
        if self._listener is not None:
            self._listener.close()
            self._listener = None

"""imap-server authenticates in its accepting process and forks only for a
client that passed: connections that never authenticate cost no process,
and as many of them as the cap allows wait at once."""

from __future__ import annotations

import os
import select
import selectors
import socket
import time
from pathlib import Path

import cloudpickle
import pytest
import remote_helpers as h
from remote_helpers import children_of, server
from support import wait_until

from imap import IMap
from imap.auth import MAX_PENDING

cloudpickle.register_pickle_by_value(h)

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc"),
]

MAGIC = b"imap-auth-"


@pytest.fixture
def secret_file(tmp_path):
    path = tmp_path / "secret"
    path.write_text("s3cret")
    return path


def _open_idle(address: str, n: int) -> list[socket.socket]:
    host, port = address.split(":")
    return [socket.create_connection((host, int(port)), timeout=30) for _ in range(n)]


def _first_words(socks: list[socket.socket], timeout: float = 60) -> dict[str, int]:
    """How each connection was met: with a challenge, or closed by the server."""
    met = {"challenged": 0, "closed": 0}
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        for sock in socks:
            selector.register(sock, selectors.EVENT_READ)
        waiting = len(socks)
        while waiting:
            ready = selector.select(max(0.0, deadline - time.monotonic()))
            assert ready, f"{waiting} connections heard nothing within {timeout} s"
            for key, _ in ready:
                try:
                    data = key.fileobj.recv(len(MAGIC))
                except ConnectionResetError:
                    data = b""
                met["challenged" if data.startswith(MAGIC) else "closed"] += 1
                selector.unregister(key.fileobj)
                waiting -= 1
    return met


def _close(socks: list[socket.socket]) -> None:
    for sock in socks:
        sock.close()


def _run(address: str, **options) -> list:
    m = IMap(worker_num=0, worker_remote=[(address, 2)], remote_options=options)
    results = m.add_task(h.inc, range(4))
    m.start()
    try:
        return list(results)
    finally:
        m.stop()


def test_idle_unauthenticated_connections_cost_no_process(secret_file):
    args = ("--secret-file", str(secret_file), "--auth-timeout", "60")
    with server("imap", args) as (address, proc):
        socks = _open_idle(address, 300)
        try:
            met = _first_words(socks)   # every one accepted and dealt with
            assert children_of(proc.pid) == set()
        finally:
            _close(socks)
    assert met == {"challenged": MAX_PENDING, "closed": 300 - MAX_PENDING}


def test_connections_beyond_the_cap_are_closed_at_once(secret_file):
    args = ("--secret-file", str(secret_file), "--auth-timeout", "60", "--max-pending", "3")
    with server("imap", args) as (address, _):
        socks = _open_idle(address, 5)
        try:
            assert _first_words(socks) == {"challenged": 3, "closed": 2}
        finally:
            _close(socks)


def test_a_slot_is_free_again_once_its_client_leaves(secret_file):
    args = ("--secret-file", str(secret_file), "--auth-timeout", "60", "--max-pending", "2")
    with server("imap", args) as (address, proc):
        socks = _open_idle(address, 2)
        assert _first_words(socks) == {"challenged": 2, "closed": 0}
        _close(socks)
        # Each leaver's slot is freed when the server reads its end: until
        # then a client may be refused, after that it is let in.
        outcome: list = []

        def admitted() -> bool:
            try:
                outcome.append(_run(address, secret="s3cret"))
            except ConnectionError:
                return False
            return True

        wait_until(admitted, 30, "a client to be admitted after the idle ones left")
        assert outcome == [[1, 2, 3, 4]]
        wait_until(lambda: not children_of(proc.pid), 30,
                   "the client's connection processes to end with it")


def test_a_silent_client_does_not_hold_up_the_next(secret_file):
    # It would hold a blocking accept loop for the whole --auth-timeout.
    args = ("--secret-file", str(secret_file), "--auth-timeout", "60")
    with server("imap", args) as (address, _):
        silent = _open_idle(address, 1)
        try:
            assert _run(address, secret="s3cret", connect_timeout=20) == [1, 2, 3, 4]
        finally:
            _close(silent)


def test_a_client_too_slow_to_authenticate_is_closed(secret_file):
    args = ("--secret-file", str(secret_file), "--auth-timeout", "0.5")
    with server("imap", args) as (address, proc):
        (sock,) = _open_idle(address, 1)
        with sock:
            sock.settimeout(60)
            heard = b""
            while chunk := sock.recv(4096):   # until the server closes it
                heard += chunk
        assert heard.startswith(MAGIC)   # the challenge, and nothing after it
        assert children_of(proc.pid) == set()


def test_an_authenticated_client_gets_a_process_of_its_own(secret_file, tmp_path):
    with server("imap", ("--secret-file", str(secret_file))) as (address, proc):
        m = IMap(worker_num=0, worker_remote=[(address, 2)], stride=2, chunksize=1,
                 remote_options={"secret": "s3cret"})
        m.add_task(h.hold_on_remote, range(2), args=(str(tmp_path),))
        m.start()
        try:
            wait_until(lambda: len(list(tmp_path.glob("held-*"))) == 2, 30,
                       "both connections to be running an item")
            assert len(children_of(proc.pid)) == 2
        finally:
            m.stop(forced=True)


# -- without a secret: the same gate, the client's first bytes ---------------------------

FORKED = "forking its process"   # the server's log line for each connection it forks


def _sockets_of(pid: int) -> int:
    """The sockets process ``pid`` holds open (reads /proc)."""
    count = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            count += os.readlink(fd).startswith("socket:")
        except OSError:   # closed while we looked
            pass
    return count


def _still_open(sock: socket.socket) -> bool:
    """Whether the server has neither closed ``sock``'s peer nor sent on it."""
    readable, _, _ = select.select([sock], [], [], 0)
    return not readable


def test_idle_connections_without_a_secret_cost_no_process(tmp_path):
    """Connections that send nothing wait in the main process, not in one of
    their own each; real clients -- stock rpyc and the remote backend -- are
    served meanwhile, each connection in its process."""
    import rpyc

    log = tmp_path / "server.log"
    with server("imap", ("--auth-timeout", "60", "--log-level", "INFO"), log=log) as (
            address, proc):
        socks = _open_idle(address, 100)
        try:
            wait_until(lambda: _sockets_of(proc.pid) == 1 + len(socks), 30,
                       "the server to accept every idle connection")
            assert children_of(proc.pid) == set()
            host, port = address.split(":")
            conn = rpyc.classic.connect(host, int(port))
            try:
                assert conn.modules.os.getppid() == proc.pid   # a process of its own
                assert conn.eval("6 * 7") == 42
            finally:
                conn.close()
            assert _run(address) == [1, 2, 3, 4]
            assert all(_still_open(sock) for sock in socks)   # still waiting
            wait_until(lambda: not children_of(proc.pid), 30,
                       "the clients' connection processes to end with them")
        finally:
            _close(socks)
    forked = log.read_text().count(FORKED)
    assert forked == 3   # the stock client's connection and the backend's two


def test_idle_connections_without_a_secret_are_closed_after_the_timeout(tmp_path):
    log = tmp_path / "server.log"
    args = ("--auth-timeout", "0.5", "--log-level", "INFO")
    with server("imap", args, log=log) as (address, proc):
        socks = _open_idle(address, 40)
        try:
            assert _first_words(socks) == {"challenged": 0, "closed": 40}
            assert children_of(proc.pid) == set()
        finally:
            _close(socks)
        # A client that speaks at once is through, timeout or not.
        assert _run(address) == [1, 2, 3, 4]
    text = log.read_text()
    assert text.count("not through the gate within 0.5 s") == 40
    assert text.count(FORKED) == 2   # the backend's two connections, nothing for the idle


def test_a_client_that_leaves_before_speaking_costs_no_process(tmp_path):
    log = tmp_path / "server.log"
    with server("imap", ("--auth-timeout", "60", "--log-level", "INFO"), log=log) as (
            address, proc):
        socks = _open_idle(address, 10)
        wait_until(lambda: _sockets_of(proc.pid) == 1 + len(socks), 30,
                   "the server to accept every connection")
        _close(socks)
        wait_until(lambda: _sockets_of(proc.pid) == 1, 30,
                   "the server to drop the connections that left")
        assert children_of(proc.pid) == set()
    text = log.read_text()
    assert text.count("closed the connection before sending anything") == 10
    assert FORKED not in text


def test_the_cap_holds_without_a_secret():
    args = ("--auth-timeout", "60", "--max-pending", "3")
    with server("imap", args) as (address, proc):
        socks = _open_idle(address, 5)
        try:
            # The server says nothing to a connection at the gate: the two
            # beyond the cap are closed, so all five have been accepted.
            assert [sock.recv(1) for sock in socks[3:]] == [b"", b""]
            assert all(_still_open(sock) for sock in socks[:3])
            with pytest.raises(ConnectionError):   # the gate is full: refused
                _run(address, connect_timeout=20)
            assert children_of(proc.pid) == set()
        finally:
            _close(socks)
        outcome: list = []

        def admitted() -> bool:
            try:
                outcome.append(_run(address))
            except ConnectionError:
                return False
            return True

        wait_until(admitted, 30, "a client to be admitted after the idle ones left")
        assert outcome == [[1, 2, 3, 4]]

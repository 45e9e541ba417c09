"""What a client trusts: only its server, and only what it needs of it.

Against real processes on 127.0.0.1: an impostor server (see
``remote_helpers.IMPOSTOR``) tries to run code in the client through the
connection; a client with a secret refuses a server that cannot prove it
holds the secret, even one replaying a real server's recorded proof.
"""

from __future__ import annotations

import socket
import threading

import cloudpickle
import pytest
import remote_helpers as h
from hypothesis import given
from hypothesis import strategies as st
from remote_helpers import impostor, impostor_report, server

from imap import IMap
from imap.auth import ServerHandshake, client_handshake, shared_secret

cloudpickle.register_pickle_by_value(h)

pytestmark = pytest.mark.timeout(90)

SERVICE_ATTACKS = {"root-execute", "root-eval", "root-getmodule", "root-namespace"}
CALLBACK_ATTACKS = {"callback-globals", "callback-owner", "callback-attribute",
                    "callback-pickle"}


def _run(address: str, **options) -> list:
    m = IMap(worker_num=0, worker_remote=[(address, 1)], remote_options=options)
    results = m.add_task(h.inc, range(4))
    m.start()
    try:
        return list(results)
    finally:
        m.stop()


# --- the client end serves nothing that runs code --------------------------------------


def test_impostor_cannot_run_code_through_the_client_service(tmp_path):
    with impostor(tmp_path, "plain") as address:
        assert _run(address) == [1, 2, 3, 4]   # it does serve the batches
    report = impostor_report(tmp_path)
    assert SERVICE_ATTACKS <= set(report), report
    assert {name: report[name] for name in SERVICE_ATTACKS
            if not report[name].startswith("refused")} == {}
    assert not list(tmp_path.glob("ran-*"))


def test_impostor_reaches_nothing_through_the_heartbeat_callback(tmp_path):
    with impostor(tmp_path, "plain") as address:
        assert _run(address) == [1, 2, 3, 4]   # and the heartbeat still works for it
    report = impostor_report(tmp_path)
    assert CALLBACK_ATTACKS <= set(report), report
    assert {name: report[name] for name in CALLBACK_ATTACKS
            if not report[name].startswith("refused")} == {}
    assert not list(tmp_path.glob("ran-*"))


# --- with a secret, the server proves itself too ---------------------------------------


class _Recorder:
    """A socket that keeps what it receives, split at each thing it sends."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.received: list[bytes] = [b""]

    def recv(self, n: int) -> bytes:
        data = self.sock.recv(n)
        self.received[-1] += data
        return data

    def sendall(self, data: bytes) -> None:
        self.sock.sendall(data)
        self.received.append(b"")


def _recorded_handshake(address: str, secret: str) -> list[bytes]:
    """What a real server sent in one secret handshake: before, and after, the
    client's answer."""
    host, port = address.split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        recorder = _Recorder(sock)
        client_handshake(recorder, shared_secret(secret))
    return recorder.received[:2]


@pytest.mark.parametrize("proof", ["replayed", "forged"])
def test_client_with_secret_refuses_a_server_that_cannot_prove_it(proof, tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("the real one")
    with server("imap", ("--secret-file", str(secret))) as (real, _):
        before, after = _recorded_handshake(real, "the real one")
    if proof == "forged":
        after = bytes(len(after))
    with impostor(tmp_path, "replay", before.hex(), after.hex()) as address:
        with pytest.raises(ConnectionError, match="did not prove"):
            _run(address, secret="the real one")
    assert impostor_report(tmp_path).get("replay") == "sending the recorded proof"
    assert not list(tmp_path.glob("ran-*"))


def test_client_without_secret_is_told_the_server_wants_one(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("s3cret")
    # The server would wait 60 s for an answer; the client knows from the first bytes.
    with server("imap", ("--secret-file", str(secret), "--auth-timeout", "60")) as (addr, _):
        with pytest.raises(ConnectionError, match="requires a shared secret"):
            _run(addr, connect_timeout=60)


# --- one reading of a secret at both ends ---------------------------------------------


def test_secret_read_from_a_file_with_its_newline_is_accepted(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("correct horse\n")
    with server("imap", ("--secret-file", str(secret))) as (addr, _):
        assert _run(addr, secret=secret.read_text()) == [1, 2, 3, 4]


def test_secret_from_environment_with_white_space_is_accepted(tmp_path):
    with server("imap", ("--secret-env", "IMAP_TEST_SECRET"),
                env={"IMAP_TEST_SECRET": "  s3cret\n"}) as (addr, _):
        assert _run(addr, secret=b"s3cret") == [1, 2, 3, 4]


@pytest.mark.parametrize("value", ["", " \n", b"\t"])
def test_empty_secret_is_a_value_error(value):
    with pytest.raises(ValueError, match="secret is empty"):
        shared_secret(value)


def test_secret_of_another_type_is_a_type_error():
    with pytest.raises(TypeError, match="str or bytes, got int"):
        shared_secret(1234)


# --- the handshake, driven without blocking, over any split of the client's bytes -----


def _drive(handshake: ServerHandshake) -> None:
    """Step a server handshake on a non-blocking socket until it is through."""
    import selectors

    with selectors.DefaultSelector() as selector:
        while events := handshake.step():
            selector.register(handshake.sock, events)
            assert selector.select(30), "the client went silent"
            selector.unregister(handshake.sock)


class _Trickle:
    """A client socket that sends in the pieces it is told."""

    def __init__(self, sock: socket.socket, pieces: list[int]) -> None:
        self.sock, self.pieces = sock, pieces

    def recv(self, n: int) -> bytes:
        return self.sock.recv(n)

    def sendall(self, data: bytes) -> None:
        for size in [*self.pieces, len(data)]:
            if data:   # nothing after the last byte: the server may be through already
                self.sock.sendall(data[:size])
                data = data[size:]


def _handshake_pair(client_secret: bytes, server_secret: bytes,
                    pieces: list[int]) -> tuple[BaseException | None, BaseException | None]:
    """Run both sides over a socket pair; each side's exception, or None."""
    server_end, client_end = socket.socketpair()
    client_end.settimeout(30)
    outcome: dict[str, BaseException | None] = {"client": None}

    def client() -> None:
        try:
            client_handshake(_Trickle(client_end, pieces), client_secret)
        except ConnectionError as exc:
            outcome["client"] = exc
        finally:
            client_end.close()

    thread = threading.Thread(target=client)
    thread.start()
    server_error = None
    try:
        server_end.setblocking(False)
        _drive(ServerHandshake(server_end, None, server_secret))
    except ConnectionError as exc:
        server_error = exc
    finally:
        server_end.close()
        thread.join(30)
    return server_error, outcome["client"]


secrets = st.binary(min_size=1, max_size=40).filter(lambda s: s.strip() == s and s)


@given(secret=secrets, pieces=st.lists(st.integers(1, 70), max_size=8))
def test_handshake_passes_with_the_same_secret_however_the_bytes_arrive(secret, pieces):
    assert _handshake_pair(secret, secret, pieces) == (None, None)


@given(client_secret=secrets, server_secret=secrets,
       pieces=st.lists(st.integers(1, 70), max_size=8))
def test_handshake_fails_at_both_ends_with_different_secrets(client_secret, server_secret,
                                                             pieces):
    server_error, client_error = _handshake_pair(client_secret, server_secret, pieces)
    if client_secret == server_secret:
        assert (server_error, client_error) == (None, None)
    else:
        assert "wrong shared secret" in str(server_error)
        assert "refused the shared secret" in str(client_error)


# --- the gate: through once the client has spoken, its bytes left unread ---------------


def _read_to_end(sock: socket.socket) -> bytes:
    sock.setblocking(True)
    sock.settimeout(30)
    data = b""
    while chunk := sock.recv(4096):
        data += chunk
    return data


@given(secret=st.one_of(st.none(), secrets), request=st.binary(min_size=1, max_size=300),
       pieces=st.lists(st.integers(1, 70), max_size=8))
def test_the_gate_lets_a_client_through_once_it_speaks_and_reads_none_of_it(secret, request,
                                                                           pieces):
    """With a secret or without, the server's side waits for the client's first
    bytes after the handshake; every byte the client sends after the
    handshake is still there for the connection's process to read."""
    import selectors

    server_end, client_end = socket.socketpair()
    client_end.settimeout(30)
    errors: list = []

    def client() -> None:
        try:
            if secret is not None:
                client_handshake(client_end, secret)
            _Trickle(client_end, pieces).sendall(request)
        except OSError as exc:
            errors.append(exc)
        finally:
            client_end.close()

    try:
        server_end.setblocking(False)
        handshake = ServerHandshake(server_end, None, secret, first_bytes=True)
        # Nothing came yet: it waits (having sent its challenge, with a secret).
        assert handshake.step() == selectors.EVENT_READ
        thread = threading.Thread(target=client)
        thread.start()
        try:
            _drive(handshake)
            assert _read_to_end(server_end) == request
        finally:
            thread.join(30)
    finally:
        server_end.close()
    assert errors == []


@pytest.mark.parametrize("secret", [None, b"s3cret"], ids=["plain", "secret"])
def test_the_gate_fails_a_client_that_leaves_before_speaking(secret):
    server_end, client_end = socket.socketpair()
    client_end.settimeout(30)

    def client() -> None:
        with client_end:
            if secret is not None:
                client_handshake(client_end, secret)

    thread = threading.Thread(target=client)
    thread.start()
    try:
        server_end.setblocking(False)
        with pytest.raises(ConnectionError, match="before sending anything"):
            _drive(ServerHandshake(server_end, None, secret, first_bytes=True))
    finally:
        thread.join(30)
        server_end.close()

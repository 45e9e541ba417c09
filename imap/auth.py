"""Authentication and trust of remote-worker connections.

Both ends of a connection use this module: the client (a remote worker's
connection, :mod:`imap.backends.remote`) and ``imap-server``
(:mod:`imap.server`). The handshake needs only the standard library; rpyc is
imported only by :func:`client_connection`, which builds the client's end
of the RPyC connection.

One connection, in order::

    client                                            server (accepting process)
      |--- TCP connect ------------------------------>|
      |<== TLS, if configured =======================>|  client certificate required
      |    server certificate verified                |   if started with --ca-certs
      |      if the client has ssl_ca_certs           |
      |<-- _MAGIC + server nonce (32 random bytes) ---|  with a shared secret only
      |--- client nonce (32 random bytes)             |
      |    + HMAC(secret, "client" + both nonces) --->|  checked; if wrong, closed
      |<-- HMAC(secret, "server" + both nonces) ------|  the server's proof
      |    checked; if wrong, ConnectionError         |
      |--- its first RPyC request ------------------->|  seen, not read (within the
      |                                               |   timeout); then fork: a
      |<== RPyC: the client drives, the server ======>|   process for this
      |    serves code execution; the client serves   |   connection alone
      |    nothing but the callables it hands over    |

* What travels: the magic line, two nonces and two HMAC-SHA256 digests.
  **The secret never does.** Each side's proof covers a nonce the *other*
  side just chose, so a recorded proof is worthless for another connection:
  an impostor cannot replay a real server's answer to a client, nor a real
  client's to a server.
* The client proves itself first: one without the secret is disconnected
  having executed nothing, and it never got a proof from the server to
  study. The server's proof then tells the client that it is about to send
  its functions and items to, and unpickle answers from, a holder of the
  secret.
* A server with a secret speaks first (the magic line), so a client without
  one is told at once (:class:`SecretRequired`) instead of waiting out its
  timeout.
* The handshake authenticates the two ends when the connection opens; it
  does not encrypt or sign what follows. Combine it with TLS where the network
  is not trusted.
* Both ends read a secret with :func:`shared_secret`: UTF-8 bytes without
  leading or trailing white space, so a secret file's final newline does not
  matter, on either end.

:class:`ServerHandshake` is the server's side, driven without blocking by
``imap-server``'s accept loop (or run to the end on a blocking socket by
:func:`server_handshake`); :func:`client_handshake` is the client's side.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import os
import selectors
import socket
import ssl
from collections.abc import Generator
from typing import Any

DEFAULT_PORT = 18812     # the port of imap-server, and of a remote address without one
AUTH_TIMEOUT = 10.0      # seconds a client gets for TLS, the secret and its first request
MAX_PENDING = 128        # connections imap-server lets wait at its gate at once
_MAGIC = b"imap-auth-2\n"
_MAGIC_FAMILY = b"imap-auth-"   # any version of the handshake starts so
_NONCE = 32
_DIGEST = hashlib.sha256().digest_size

# What the client end of a connection lets the server do: call the callables
# the client handed it (the heartbeat), nothing else -- no attribute of any
# object, no pickling, no import of the modules named by a remote exception.
CLIENT_CONFIG = {
    "allow_all_attrs": False, "allow_public_attrs": False, "allow_safe_attrs": False,
    "allow_exposed_attrs": False, "allow_getattr": False, "allow_setattr": False,
    "allow_delattr": False, "allow_pickle": False, "import_custom_exceptions": False,
    "instantiate_custom_exceptions": False, "instantiate_oldstyle_exceptions": False,
    "include_local_traceback": False,
}


class SecretRequired(ConnectionError):
    """The server asked for a shared secret and the client has none."""


def shared_secret(value: str | bytes | bytearray) -> bytes:
    """The shared secret as both ends compare it.

    A str is encoded as UTF-8; leading and trailing white space (spaces,
    tabs, newlines) is not part of the secret, so ``open(path).read()`` and
    ``imap-server --secret-file path`` agree.

    Raises:
        TypeError: ``value`` is neither str nor bytes.
        ValueError: nothing is left once the white space is stripped.
    """
    if isinstance(value, str):
        value = value.encode()
    elif isinstance(value, (bytes, bytearray)):
        value = bytes(value)
    else:
        raise TypeError(f"a shared secret must be a str or bytes, got {type(value).__name__}")
    value = value.strip()
    if not value:
        raise ValueError("the shared secret is empty (or only white space); give a "
                         "non-empty secret, the same at both ends")
    return value


def _mac(secret: bytes, role: bytes, server_nonce: bytes, client_nonce: bytes) -> bytes:
    return hmac.new(secret, role + server_nonce + client_nonce, hashlib.sha256).digest()


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("the peer closed the connection during authentication")
        data += chunk
    return data


def client_handshake(sock: socket.socket, secret: bytes) -> None:
    """Prove the client knows ``secret``, and check that the server does too.

    Raises:
        ConnectionError: the server sent no challenge, refused the client's
            proof, or could not prove it holds the secret.
    """
    header = _recv_exact(sock, len(_MAGIC) + _NONCE)
    if not header.startswith(_MAGIC):
        if header.startswith(_MAGIC_FAMILY):
            version = header.split(b"\n", 1)[0].decode(errors="replace")
            raise ConnectionError(
                f"the server speaks another version of the secret handshake ({version}, "
                f"this client {_MAGIC.strip().decode()}); run the same imap version on "
                f"both ends")
        raise ConnectionError("the server did not send an imap-server secret challenge "
                              "(is it a server without --secret-file/--secret-env?)")
    server_nonce = header[len(_MAGIC):]
    client_nonce = os.urandom(_NONCE)
    sock.sendall(client_nonce + _mac(secret, b"client", server_nonce, client_nonce))
    try:
        proof = _recv_exact(sock, _DIGEST)
    except ConnectionError:
        raise ConnectionError("the server refused the shared secret") from None
    if not hmac.compare_digest(proof, _mac(secret, b"server", server_nonce, client_nonce)):
        raise ConnectionError("the server did not prove it knows the shared secret "
                              "(it may be an impostor on that port)")


class ServerHandshake:
    """The server's side of one connection's TLS and secret handshake.

    Made on an accepted socket; :meth:`step` advances it as far as the
    socket allows without blocking and says what to wait for next, so one
    thread can drive many handshakes with a selector. On a blocking socket
    a single :meth:`step` runs it to the end.

    With ``first_bytes``, the client is through only once it has also sent
    the first bytes of what follows (its first RPyC request): they are
    looked at, not read, so the process that serves the connection reads
    them. A client that closes before it sends any fails
    (:class:`ConnectionError`). ``imap-server`` forks for a connection only
    then, so one that connects and says nothing costs no process, with or
    without TLS and a secret.

    Args:
        sock: the accepted socket.
        context: the server's TLS context, or None.
        secret: the shared secret (see :func:`shared_secret`), or None.
        deadline: ``time.monotonic()`` by which the client must be through
            (kept here for the driver; :meth:`step` does not look at it).
        first_bytes: wait for the client's first bytes after TLS and the
            secret.
    """

    def __init__(self, sock: socket.socket, context: ssl.SSLContext | None,
                 secret: bytes | None, deadline: float = float("inf"),
                 first_bytes: bool = False) -> None:
        self.peer = sock.getpeername()
        self.deadline = deadline
        self.credentials: Any = None
        if context is not None:
            sock = context.wrap_socket(sock, server_side=True,
                                       do_handshake_on_connect=False)
        self.sock = sock
        self._context = context
        self._secret = secret
        self._first_bytes = first_bytes
        self._steps = self._run()

    def step(self) -> int:
        """Advance; 0 once the client is authenticated, else the selector
        events (``EVENT_READ`` or ``EVENT_WRITE``) to wait for.

        Raises:
            ConnectionError: the client failed (wrong secret, closed, TLS
                refused); the caller closes :attr:`sock`.
        """
        try:
            return next(self._steps)
        except StopIteration:
            return 0
        except ssl.SSLError as exc:
            raise ConnectionError(f"TLS: {exc}") from exc

    def _run(self) -> Generator[int, None, None]:
        if self._context is not None:
            yield from self._io(self.sock.do_handshake)
            self.credentials = self.sock.getpeercert()
        if self._secret is not None:
            server_nonce = os.urandom(_NONCE)
            yield from self._send(_MAGIC + server_nonce)
            answer = yield from self._recv(_NONCE + _DIGEST)
            client_nonce, proof = answer[:_NONCE], answer[_NONCE:]
            if not hmac.compare_digest(proof, _mac(self._secret, b"client", server_nonce,
                                                   client_nonce)):
                raise ConnectionError("wrong shared secret")
            yield from self._send(_mac(self._secret, b"server", server_nonce, client_nonce))
        if self._first_bytes:
            yield from self._spoken()

    def _spoken(self) -> Generator[int, None, None]:
        """Wait until the client has sent something; read none of it.

        Bytes TLS has decrypted and holds are enough; else the socket's own
        bytes are peeked at (for TLS, a record not yet decrypted: whatever
        it holds, the client spoke).
        """
        pending = getattr(self.sock, "pending", None)
        while not (pending is not None and pending()):
            try:   # the socket's bytes, under TLS too (``socket.socket.recv`` of the descriptor)
                data = socket.socket.recv(self.sock, 1, socket.MSG_PEEK)
            except (BlockingIOError, InterruptedError):
                yield selectors.EVENT_READ
                continue
            if not data:
                raise ConnectionError("the client closed the connection before sending "
                                      "anything")
            return

    @staticmethod
    def _io(call: Any, *args: Any) -> Generator[int, None, Any]:
        """``call(*args)``, retried after each wait the socket asks for."""
        while True:
            try:
                return call(*args)
            except (BlockingIOError, ssl.SSLWantReadError):
                yield selectors.EVENT_READ
            except ssl.SSLWantWriteError:
                yield selectors.EVENT_WRITE

    def _send(self, data: bytes) -> Generator[int, None, None]:
        while data:
            try:
                sent = self.sock.send(data)
            except BlockingIOError:   # a plain socket's send buffer is full
                yield selectors.EVENT_WRITE
                continue
            except ssl.SSLWantReadError:
                yield selectors.EVENT_READ
                continue
            except ssl.SSLWantWriteError:
                yield selectors.EVENT_WRITE
                continue
            data = data[sent:]

    def _recv(self, n: int) -> Generator[int, None, bytes]:
        data = b""
        while len(data) < n:
            chunk = yield from self._io(self.sock.recv, n - len(data))
            if not chunk:
                raise ConnectionError("the client closed the connection during "
                                      "authentication")
            data += chunk
        return data


def server_handshake(sock: socket.socket, secret: bytes) -> bool:
    """Run the server's side of the secret handshake on a blocking socket.

    Returns:
        True if the client proved it knows ``secret`` (the server's proof is
        then sent), False if it did not.
    """
    try:
        return ServerHandshake(sock, None, secret).step() == 0
    except ConnectionError:
        return False


@functools.cache
def _client_classes() -> tuple[type, type]:
    """The rpyc service and stream of a connection's client end (rpyc is
    imported on first use only)."""
    from rpyc.core.service import MasterService
    from rpyc.core.stream import SocketStream

    class ClientService(MasterService):
        """Drives the server's classic service (``conn.execute``,
        ``conn.namespace``) and exposes nothing to it: with
        :data:`CLIENT_CONFIG`, the server can call the callables it was
        handed and look at nothing, so whatever answers on the port cannot
        run code in the client through the connection."""

        __slots__ = ()

        def _rpyc_getattr(self, name: str) -> Any:
            raise AttributeError(f"the client end of an imap connection serves no "
                                 f"attribute ({name!r})")

    class ClientStream(SocketStream):
        """A socket stream whose first read spots a secret challenge: the
        server wants a secret this client does not have."""

        __slots__ = ("first",)

        def __init__(self, sock: socket.socket) -> None:
            super().__init__(sock)
            self.first = True

        def read(self, count: int) -> bytes:
            data = super().read(count)
            if self.first:
                self.first = False
                if data and _MAGIC_FAMILY.startswith(data[:len(_MAGIC_FAMILY)]):
                    raise SecretRequired(
                        "the server requires a shared secret; give it as "
                        "remote_options={'secret': ...}")
            return data

    return ClientService, ClientStream


def client_connection(sock: socket.socket, compress: bool, timeout: float) -> Any:
    """The client's end of an RPyC connection over ``sock`` (authenticated).

    It drives a classic server (``conn.execute``, ``conn.namespace``) and
    serves nothing but the callables it passes to it: the server cannot run
    code here (see :data:`CLIENT_CONFIG`).

    Raises:
        SecretRequired: the server asked for a shared secret.
    """
    from rpyc.core.channel import Channel
    from rpyc.utils.factory import connect_channel

    from .worker.agent_link import send_linear

    service, stream = _client_classes()
    config = dict(CLIENT_CONFIG, sync_request_timeout=timeout)
    channel = Channel(stream(sock), compress=compress)
    # Large frames in linear time, where rpyc's internals are as expected and
    # the environment does not turn it off (else rpyc's own methods).
    send_linear(channel.stream, channel)
    return connect_channel(channel, service, config=config)

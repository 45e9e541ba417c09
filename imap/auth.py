"""Authentication of remote-worker connections: TLS, then a shared secret.

Both ends of a connection use this module: the client (a remote worker's
connection, :mod:`imap.backends.remote`) and ``imap-server``
(:mod:`imap.server`). Only the standard library is imported, so the client
can use it without the server and without rpyc.

One connection, in order::

    client                                            server (one process per connection)
      |--- TCP connect ------------------------------>|
      |<== TLS, if configured =======================>|  client certificate required
      |                                               |   if started with --ca-certs
      |<-- _MAGIC + nonce (32 random bytes) ----------|  with a shared secret only:
      |--- HMAC-SHA256(secret, "client" + nonce) ---->|  checked; if wrong, closed
      |<-- HMAC-SHA256(secret, "server" + nonce) -----|  the server's proof
      |    checked; if wrong, ConnectionError         |
      |<== classic RPyC =============================>|  the first request is read now

* What travels: the magic line, the nonce and two HMAC digests. **The secret
  never does**; a fresh nonce per connection means a recorded answer is
  worthless for another connection.
* The client proves itself first: one without the secret is disconnected
  having executed nothing. The server's proof then tells the client that it
  is not about to send its functions and items to an impostor.
* The handshake authenticates the two ends when the connection opens; it
  does not encrypt or sign what follows. Combine it with TLS where the network
  is not trusted.

:func:`client_handshake` and :func:`server_handshake` are the two sides of
the secret exchange; :class:`Authenticator` is what ``imap-server`` gives
rpyc to run TLS and the server side on every accepted socket.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import socket
import ssl

DEFAULT_PORT = 18812     # the port of imap-server, and of a remote address without one
AUTH_TIMEOUT = 10.0      # seconds a client gets to finish TLS and the secret handshake
_MAGIC = b"imap-auth-1\n"
_NONCE = 32
_DIGEST = hashlib.sha256().digest_size


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("the peer closed the connection during authentication")
        data += chunk
    return data


def _mac(secret: bytes, role: bytes, nonce: bytes) -> bytes:
    return hmac.new(secret, role + nonce, hashlib.sha256).digest()


def server_handshake(sock: socket.socket, secret: bytes) -> bool:
    """Challenge the client; True if it proved it knows ``secret``.

    The server sends a magic line and a random nonce; the client answers
    HMAC-SHA256(secret, "client" + nonce); the server then proves itself with
    HMAC-SHA256(secret, "server" + nonce). The secret never travels.
    """
    nonce = os.urandom(_NONCE)
    sock.sendall(_MAGIC + nonce)
    answer = _recv_exact(sock, _DIGEST)
    if not hmac.compare_digest(answer, _mac(secret, b"client", nonce)):
        return False
    sock.sendall(_mac(secret, b"server", nonce))
    return True


def client_handshake(sock: socket.socket, secret: bytes) -> None:
    """Answer the server's challenge; raise ``ConnectionError`` on failure."""
    header = _recv_exact(sock, len(_MAGIC) + _NONCE)
    if not header.startswith(_MAGIC):
        raise ConnectionError("the server did not send an imap-server secret challenge "
                              "(is it a server without --secret-file/--secret-env?)")
    nonce = header[len(_MAGIC):]
    sock.sendall(_mac(secret, b"client", nonce))
    try:
        proof = _recv_exact(sock, _DIGEST)
    except ConnectionError:
        raise ConnectionError("the server refused the shared secret") from None
    if not hmac.compare_digest(proof, _mac(secret, b"server", nonce)):
        raise ConnectionError("the server did not prove it knows the shared secret")


class Authenticator:
    """An rpyc authenticator: TLS (optional) then the secret (optional).

    Called by rpyc on each accepted socket, in the connection's own process,
    before the first RPyC request is read. Any failure, or a client slower
    than ``timeout`` seconds, is an ``AuthenticationError``: rpyc closes the
    socket and the client has executed nothing.
    """

    def __init__(self, context: ssl.SSLContext | None, secret: bytes | None,
                 timeout: float = AUTH_TIMEOUT) -> None:
        self.context = context
        self.secret = secret
        self.timeout = timeout

    def __call__(self, sock: socket.socket) -> tuple[socket.socket, object]:
        from rpyc.utils.authenticators import AuthenticationError

        peer = sock.getpeername()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(self.timeout)
        credentials = None
        try:
            if self.context is not None:
                sock = self.context.wrap_socket(sock, server_side=True)
                credentials = sock.getpeercert()
            if self.secret is not None and not server_handshake(sock, self.secret):
                raise AuthenticationError(f"{peer}: wrong shared secret")
        except AuthenticationError:
            raise
        except (OSError, ConnectionError, ssl.SSLError) as exc:
            raise AuthenticationError(f"{peer}: {exc}") from exc
        sock.settimeout(None)
        return sock, credentials

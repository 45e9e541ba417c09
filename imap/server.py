"""``imap-server``: a classic RPyC server for remote IMap workers.

Each accepted connection is served by its own forked process, so one host
uses all its cores (one remote worker = one connection = one process).
Authentication (TLS, then a shared secret) happens in that process before
the first RPyC request is read, so a client that fails it executes nothing.

Run it as ``imap-server`` or ``python -m imap.server``; see ``--help`` and
the "Remote workers" page of the documentation. :func:`local` starts one on a
free loopback port for examples and tests.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import hmac
import ipaddress
import logging
import os
import selectors
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

DEFAULT_PORT = 18812
AUTH_TIMEOUT = 10.0      # seconds a client gets to finish TLS and the secret handshake
_MAGIC = b"imap-auth-1\n"
_NONCE = 32
_DIGEST = hashlib.sha256().digest_size

log = logging.getLogger("imap.server")


# --- the shared-secret handshake (both sides) ----------------------------------------


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


class _Authenticator:
    """An rpyc authenticator: TLS (optional) then the secret (optional)."""

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


# --- the command line ----------------------------------------------------------------


def _is_loopback(host: str) -> bool:
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return all(ipaddress.ip_address(info[4][0]).is_loopback for info in infos)


def _read_secret(args: argparse.Namespace, parser: argparse.ArgumentParser) -> bytes | None:
    if args.secret_file and args.secret_env:
        parser.error("give --secret-file or --secret-env, not both")
    if args.secret_file:
        try:
            secret = Path(args.secret_file).read_bytes().strip()
        except OSError as exc:
            parser.error(f"cannot read --secret-file {args.secret_file}: {exc}")
    elif args.secret_env:
        value = os.environ.get(args.secret_env)
        if value is None:
            parser.error(f"--secret-env {args.secret_env}: the variable is not set")
        secret = value.strip().encode()
    else:
        return None
    if not secret:
        parser.error("the shared secret is empty")
    return secret


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="imap-server",
        description="Serve remote IMap workers (classic RPyC, one process per connection).")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT,
                   help=f"TCP port (default {DEFAULT_PORT}; 0 picks a free one)")
    p.add_argument("--certfile", help="TLS: the server certificate (PEM)")
    p.add_argument("--keyfile", help="TLS: the server private key (PEM)")
    p.add_argument("--ca-certs", help="TLS: CA bundle; clients must present a certificate "
                                      "signed by it")
    p.add_argument("--secret-file", help="file holding the shared secret")
    p.add_argument("--secret-env", metavar="VAR",
                   help="environment variable holding the shared secret")
    p.add_argument("--insecure", action="store_true",
                   help="allow a non-loopback bind with neither TLS nor a secret")
    p.add_argument("--auth-timeout", type=float, default=AUTH_TIMEOUT, metavar="SECONDS",
                   help=f"time a client gets to pass TLS and the secret (default {AUTH_TIMEOUT})")
    p.add_argument("--log-level", default="WARNING",
                   choices=["DEBUG", "INFO", "WARNING", "ERROR"], type=str.upper)
    return p


class _Terminated(Exception):
    """SIGTERM reached the server's main process."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the server until interrupted (the ``imap-server`` console script)."""
    parser = _parser()
    args = parser.parse_args(argv)
    secret = _read_secret(args, parser)
    if (args.keyfile or args.ca_certs) and not args.certfile:
        parser.error("--keyfile and --ca-certs need --certfile")
    if not (args.certfile or secret or args.insecure or _is_loopback(args.host)):
        parser.error(
            f"refusing to bind the non-loopback address {args.host} with neither TLS "
            "(--certfile) nor a shared secret (--secret-file/--secret-env): anyone who can "
            "reach it could run any code as this user. Add one, or pass --insecure.")
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s")
    context = None
    if args.certfile:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.certfile, args.keyfile)
        if args.ca_certs:
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(args.ca_certs)

    from rpyc.core.service import ClassicService
    from rpyc.utils.server import ForkingServer

    authenticator = None
    if context or secret:
        authenticator = _Authenticator(context, secret, args.auth_timeout)
    server = ForkingServer(
        ClassicService, hostname=args.host, port=args.port, reuse_addr=True,
        authenticator=authenticator, logger=log,
        protocol_config={"sync_request_timeout": None},
    )
    parent = os.getpid()

    def terminate(signum: int, frame: object) -> None:
        if os.getpid() == parent:
            raise _Terminated  # out of accept(); start() closes the server
        else:  # a connection's process: end at once
            os._exit(128 + signum)

    try:
        signal.signal(signal.SIGTERM, terminate)
        server.listener.listen(server.backlog)  # listening before we say so; start() repeats it
        print(f"imap-server listening on {server.host}:{server.port}", flush=True)
        server.start()
    except (KeyboardInterrupt, _Terminated):
        pass
    finally:
        server.close()
    return 0


# --- an embedded server for examples and tests -----------------------------------------


_OPTION_FLAGS = {"certfile": "--certfile", "keyfile": "--keyfile", "ca_certs": "--ca-certs",
                 "secret_file": "--secret-file", "secret_env": "--secret-env",
                 "log_level": "--log-level", "auth_timeout": "--auth-timeout"}


@contextlib.contextmanager
def local(n: int = 2, timeout: float = 30.0, **options: str) -> Iterator[list[tuple[str, int]]]:
    """Run an ``imap-server`` on a free loopback port for the ``with`` block.

    Args:
        n: remote workers (connections) to offer in the yielded address list.
        timeout: seconds to wait for the server to listen.
        **options: server options by name: ``certfile``, ``keyfile``,
            ``ca_certs``, ``secret_file``, ``secret_env``, ``auth_timeout``,
            ``log_level``.

    Yields:
        ``[("127.0.0.1:PORT", n)]``, ready for ``IMap(worker_remote=...)``.

    Example:
        >>> with local(2) as remote:                                # doctest: +SKIP
        ...     print(list(imap(abs, [-1, -2], worker_num=0, worker_remote=remote)))
    """
    cmd = [sys.executable, "-m", "imap.server", "--host", "127.0.0.1", "--port", "0"]
    for name, value in options.items():
        if name not in _OPTION_FLAGS:
            raise TypeError(f"local() got an unknown option {name!r}; "
                            f"known: {', '.join(sorted(_OPTION_FLAGS))}")
        cmd += [_OPTION_FLAGS[name], str(value)]
    env = dict(os.environ)
    package_root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    # Its own session: stopping kills the server and every forked connection process.
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
                            env=env, start_new_session=True)
    try:
        port = _wait_listening(proc, timeout)
        yield [(f"127.0.0.1:{port}", n)]
    finally:
        kill_group(proc)


def _wait_listening(proc: subprocess.Popen, timeout: float) -> int:
    """The port from the server's ``imap-server listening on HOST:PORT`` line."""
    deadline = time.monotonic() + timeout
    buffer = b""
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while b"\n" not in buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not sel.select(left):
                raise RuntimeError(f"imap-server did not start listening within {timeout} s")
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                raise RuntimeError(f"imap-server exited with code {proc.wait()} before "
                                   "listening (see its stderr)")
            buffer += chunk
    line = buffer.split(b"\n", 1)[0].decode()
    if not line.startswith("imap-server listening on "):
        raise RuntimeError(f"unexpected first line from imap-server: {line!r}")
    return int(line.rsplit(":", 1)[1])


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL a server started in its own session, with its children; reap it."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


if __name__ == "__main__":
    sys.exit(main())

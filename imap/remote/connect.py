"""Opening a connection to a remote worker host: TCP, TLS, the shared-secret
handshake, RPyC, and the agent uploaded into it.

:func:`connect` (and :func:`open_link`, which also returns the socket) is
the one way the remote backend, and anything else, reaches a host; the
address and the ``remote_options`` are read as :mod:`imap.options` checks
them. What each end must trust is in doc/remote.rst.
"""

from __future__ import annotations

import importlib
import socket
import ssl
import threading
from pathlib import Path
from typing import Any

import cloudpickle

from ..options import REMOTE_OPTIONS

# ``@imports`` wrappers call helpers of imap.imports; remote hosts have no imap,
# so that module travels by value with the functions it wraps.
cloudpickle.register_pickle_by_value(importlib.import_module("imap.imports"))

CONNECT_TIMEOUT = 10.0  # seconds to connect, authenticate and set a connection up
LIVENESS = 10.0         # seconds a busy connection may go without a sign of life
# The batch kernel, the link (which uses the kernel), then the agent (which
# uses both) run in each connection, in this order, in one namespace.
_WORKER = Path(__file__).resolve().parent.parent / "worker"
AGENT_PARTS = ("kernel.py", "agent_link.py", "remote_agent.py")
AGENT_SOURCE = "\n".join((_WORKER / part).read_text() for part in AGENT_PARTS)


def _keepalive(sock: socket.socket, idle: float) -> None:
    """TCP keepalive: a peer gone without a word (a host down, a link cut)
    is found by the operating system too, after ``idle`` s and 3 probes."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        for name, value in (("TCP_KEEPIDLE", max(1, int(idle))), ("TCP_KEEPINTVL", 1),
                            ("TCP_KEEPCNT", 3)):
            if hasattr(socket, name):
                sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, name), value)
    except OSError:  # pragma: no cover - not supported here
        pass


def _cut_off(sock: socket.socket, cut: threading.Event) -> None:
    cut.set()
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def abort(conn: Any, sock: socket.socket) -> None:
    """Close a connection without waiting for the server."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        conn.close()
    except Exception:
        pass


def _client_context(options: dict) -> ssl.SSLContext | None:
    if not (options.get("ssl") or options.get("ssl_certfile") or options.get("ssl_ca_certs")):
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if options.get("ssl_ca_certs"):
        context.load_verify_locations(options["ssl_ca_certs"])
    else:  # encrypted, but the server is not verified
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if options.get("ssl_certfile"):
        context.load_cert_chain(options["ssl_certfile"], options.get("ssl_keyfile"))
    return context


def connect(host: str, port: int, options: dict | None = None) -> Any:
    """A classic RPyC connection to ``host:port``, authenticated per ``options``.

    The agent is already uploaded into it.

    Raises:
        ConnectionError: naming ``host:port``, when the host cannot be reached
            or refuses the TLS handshake or the shared secret.
    """
    return open_link(host, port, options)[0]


def open_link(host: str, port: int, options: dict | None = None) -> tuple[Any, socket.socket]:
    """:func:`connect`, also returning the connection's socket."""
    import rpyc

    from ..auth import SecretRequired, client_connection, client_handshake, shared_secret

    options = options or {}
    unknown = set(options) - set(REMOTE_OPTIONS)
    if unknown:
        raise ValueError(f"unknown remote option(s) {sorted(unknown)}; "
                         f"known: {list(REMOTE_OPTIONS)}")
    timeout = options.get("connect_timeout", CONNECT_TIMEOUT)
    secret = options.get("secret")
    if secret is not None:
        secret = shared_secret(secret)   # the server reads its secret the same way
    where = f"{host}:{port}"
    sock = None
    cut = threading.Event()   # set when the set-up took too long and was cut off
    watchdog = conn = None
    try:
        context = _client_context(options)
        sock = socket.create_connection((host, port), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if context is not None:
            sock = context.wrap_socket(sock, server_hostname=host)
        # rpyc reads a frame until it is whole, whatever the socket timeout:
        # a server that accepts and never answers (stopped), or talks
        # another protocol (expects a secret, TLS), would hold the set-up
        # forever. The watchdog shuts the socket down after ``timeout``.
        watchdog = threading.Timer(timeout, _cut_off, args=(sock, cut))
        watchdog.daemon = True
        watchdog.start()
        if secret:
            client_handshake(sock, secret)
        sock.settimeout(None)
        _keepalive(sock, options.get("liveness", LIVENESS))
        # rpyc compresses large frames by default: CPU on both ends that a
        # pickled batch rarely repays (see remote_agent.imap_agent_compress).
        compress = bool(options.get("compress", False))
        # The client's end serves the server nothing that runs code here.
        conn = client_connection(sock, compress, timeout)
        conn.execute(AGENT_SOURCE)
        conn.namespace["imap_agent_compress"](compress)
    except SecretRequired as exc:
        sock.close()
        raise ConnectionError(f"remote worker host {where}: {exc}") from None
    except (OSError, ssl.SSLError, EOFError, rpyc.AsyncResultTimeout) as exc:
        if sock is not None:
            sock.close()
        hint = ""
        if sock is not None and not (secret and context):
            hint = " (does the server require a shared secret or TLS?)"
        if cut.is_set() or isinstance(exc, rpyc.AsyncResultTimeout):
            why = "is it stopped or overloaded"
            if hint:
                why += ", or does it require a shared secret or TLS"
            raise ConnectionError(
                f"remote worker host {where} accepted the connection but did not complete "
                f"it within {timeout} s ({why}?)") from exc
        raise ConnectionError(
            f"cannot connect to remote worker host {where}: {exc}{hint}") from exc
    except Exception as exc:   # the agent did not start
        if conn is None:
            if sock is not None:
                sock.close()
            raise
        abort(conn, sock)
        raise ConnectionError(
            f"cannot start the imap agent on remote worker host {where} (is cloudpickle "
            f"installed there?): {exc}") from exc
    finally:
        if watchdog is not None:
            watchdog.cancel()
    return conn, sock

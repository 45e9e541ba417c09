"""``imap-server``: a classic RPyC server for remote IMap workers.

Each connection is served by its own forked process, so one host uses all
its cores (one remote worker = one connection = one process). A connection
is forked only once it is through the gate, kept by the main process
(:class:`Server`) for all pending connections at once: TLS and the shared
secret where configured (see :mod:`imap.auth`), then the client's first
bytes, all within ``--auth-timeout``. A client that fails, or connects and
says nothing, executes nothing and costs no process -- with a secret or
without one.

A connection's process never outlives the server's main process, however
that ends (SIGKILL included): the same watch as every worker process
(:mod:`imap.lifeline`), plus, on Linux, ``prctl(PR_SET_PDEATHSIG, SIGKILL)``
set just after the fork. So killing the main process never leaves
connection processes computing for nobody.

Run it as ``imap-server`` or ``python -m imap.server``; see ``--help`` and
the "Remote workers" page of the documentation. This module holds the
command line and the server; :func:`imap.embedded.local` starts one on a free
loopback port for examples and tests.
"""

from __future__ import annotations

import argparse
import importlib
import ipaddress
import logging
import math
import os
import selectors
import signal
import socket
import ssl
import sys
import time
import types
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import lifeline
from .auth import AUTH_TIMEOUT, DEFAULT_PORT, MAX_PENDING, ServerHandshake, shared_secret

log = logging.getLogger("imap.server")

CONNECTION_MARK = "_imap_server_connection"  # a module in sys.modules of a connection's process
BACKLOG = 256         # connections the kernel may hold before they are accepted

# Names that moved out of this module, and where to: still reachable here, with a
# DeprecationWarning (the README and the docs showed ``from imap.server import local``).
_MOVED = {"local": "imap.embedded", "kill_group": "imap.embedded",
          "client_handshake": "imap.auth", "server_handshake": "imap.auth"}


def __getattr__(name: str) -> object:
    """A moved name, imported from its new module on first use (PEP 562)."""
    where = _MOVED.get(name)
    if where is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    warnings.warn(f"imap.server.{name} is deprecated: import it from {where} "
                  f"(from {where} import {name})", DeprecationWarning, stacklevel=2)
    return getattr(importlib.import_module(where), name)


# --- the command line ----------------------------------------------------------------


def _is_loopback(host: str) -> bool:
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return all(ipaddress.ip_address(info[4][0]).is_loopback for info in infos)


def _read_secret(args: argparse.Namespace, parser: argparse.ArgumentParser) -> bytes | None:
    """The shared secret from --secret-file or --secret-env, read as the
    client reads its own (:func:`imap.auth.shared_secret`: white space at
    either end is not part of it)."""
    if args.secret_file and args.secret_env:
        parser.error("give --secret-file or --secret-env, not both")
    if args.secret_file:
        try:
            value: str | bytes = Path(args.secret_file).read_bytes()
        except OSError as exc:
            parser.error(f"cannot read --secret-file {args.secret_file}: {exc}")
        where = f"--secret-file {args.secret_file}"
    elif args.secret_env:
        value = os.environ.get(args.secret_env)
        if value is None:
            parser.error(f"--secret-env {args.secret_env}: the variable is not set")
        where = f"--secret-env {args.secret_env}"
    else:
        return None
    try:
        return shared_secret(value)
    except ValueError:
        parser.error(f"{where}: the shared secret is empty (or only white space)")


def _number(kind: type, low: float, high: float, fix: str) -> Any:
    """An argparse type: a ``kind`` from ``low`` to ``high``, else an error
    naming the value and ``fix``."""
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            value = math.nan
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text!r} is {fix}")
        return value
    return parse


_port = _number(int, 0, 65535, "not a port: give a number from 1 to 65535 (0 picks a free one)")
_seconds = _number(float, 1e-3, 1e9, f"not a time a client could use: give seconds > 0, "
                                     f"e.g. {AUTH_TIMEOUT:g}")
_count = _number(int, 1, 1 << 20, f"not a count: give an int >= 1, e.g. {MAX_PENDING}")


def _bind_host(text: str, parser: argparse.ArgumentParser) -> str:
    """The address of --host as the socket takes it: no brackets, no port."""
    host = text[1:-1] if text.startswith("[") and text.endswith("]") else text
    if host.startswith("["):   # "[::1]:80"
        inner, _, port = host[1:].partition("]")
        parser.error(f"--host {text}: give the address without a port (--host {inner} "
                     f"--port {port.lstrip(':') or 'PORT'})")
    if host.count(":") == 1:   # "127.0.0.1:80", "localhost:80"
        name, port = host.split(":")
        parser.error(f"--host {text}: give the address without a port (--host {name} "
                     f"--port {port or 'PORT'})")
    if ":" in host:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            parser.error(f"--host {text} is neither a host name nor an IP address; an "
                         f"IPv6 address is written like ::1 or [::1]")
    return host


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="imap-server",
        description="Serve remote IMap workers (classic RPyC, one process per connection).")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1; IPv6 as ::1 or [::1])")
    p.add_argument("--port", type=_port, default=DEFAULT_PORT,
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
    p.add_argument("--auth-timeout", type=_seconds, default=AUTH_TIMEOUT, metavar="SECONDS",
                   help="time a client gets to pass TLS and the secret (where configured) "
                        "and send its first request; one that does not is closed without "
                        f"a process (default {AUTH_TIMEOUT:g})")
    p.add_argument("--max-pending", type=_count, default=MAX_PENDING, metavar="N",
                   help="connections that may wait at that gate at once, secret or not; "
                        f"more are closed at once (default {MAX_PENDING})")
    p.add_argument("--log-level", default="WARNING",
                   choices=["DEBUG", "INFO", "WARNING", "ERROR"], type=str.upper)
    return p


class _Terminated(Exception):
    """SIGTERM reached the server's main process."""


# --- a connection's process ends with the main process -------------------------------


def end_with_parent(parent: int, kernel: bool = True) -> None:
    """Make this process (a connection's, just forked from ``parent``) end when
    ``parent`` ends: the mechanism of every process the project starts
    (:func:`imap.lifeline.end_with_parent`); ``kernel``: also ask Linux to
    SIGKILL it then (the server forks from its main thread, so it may)."""
    lifeline.end_with_parent(parent, kernel=kernel)


def _serve_connection(sock: socket.socket, credentials: Any) -> None:
    """In a connection's process: serve classic RPyC over ``sock`` (through the gate)
    until the client leaves.

    The server's end is rpyc's slave service alone: it executes what the
    client sends and asks nothing of the client.
    """
    from rpyc.core.channel import Channel
    from rpyc.core.service import SlaveService
    from rpyc.core.stream import SocketStream
    from rpyc.utils.factory import connect_channel

    sock.setblocking(True)
    config = {"sync_request_timeout": None, "credentials": credentials, "logger": log,
              "endpoints": (sock.getsockname(), sock.getpeername())}
    conn = connect_channel(Channel(SocketStream(sock)), SlaveService, config=config)
    try:
        conn.serve_all()
    finally:
        conn.close()


def _reap(signum: int, frame: object) -> None:
    """SIGCHLD: collect every connection process that ended (no zombies)."""
    try:
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass
    except ChildProcessError:
        pass


class Server:
    """The accept loop: each client passes the gate here; only one that did gets a process.

    The gate is TLS and the shared secret where configured, then the
    client's first bytes (its first RPyC request, left unread for the
    connection's process): so a connection that is opened and left idle
    costs no process, with a secret or without. One thread does everything
    in the main process: a selector watches the listening socket and every
    connection still at the gate (:class:`imap.auth.ServerHandshake`, driven
    without blocking), so a slow or silent client holds nothing but its
    socket and never delays the others. A client gets ``auth_timeout``
    seconds, after which the connection is closed; at most ``max_pending``
    wait at once, and a connection beyond that is closed as soon as it is
    accepted. Forking happens only here, in the main thread: a fork from a
    process with other threads may copy a lock some thread holds (Python
    3.12 warns about it), and ``PR_SET_PDEATHSIG`` fires when the thread
    that forked ends, not the process.

    Args:
        host: the address to bind (an IPv6 address without brackets).
        port: the port; 0 picks a free one (see :attr:`port`).
        context: the server's TLS context, or None.
        secret: the shared secret (:func:`imap.auth.shared_secret`), or None.
        auth_timeout: seconds a client has to pass TLS and the secret and
            send its first bytes.
        max_pending: connections that may wait at the gate at once.
    """

    def __init__(self, host: str, port: int, context: ssl.SSLContext | None = None,
                 secret: bytes | None = None, auth_timeout: float = AUTH_TIMEOUT,
                 max_pending: int = MAX_PENDING) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.listener = socket.create_server((host, port), family=family, backlog=BACKLOG)
        self.listener.setblocking(False)
        self.host, self.port = host, self.listener.getsockname()[1]
        self.context, self.secret = context, secret
        self.auth_timeout, self.max_pending = auth_timeout, max_pending
        self._pending: dict[ServerHandshake, int] = {}   # -> the events it waits for
        self._selector = selectors.DefaultSelector()
        self._selector.register(self.listener, selectors.EVENT_READ)
        self._main = os.getpid()
        self._full = False   # the cap was reached and not yet left

    def serve_forever(self) -> None:
        """Accept, gate and fork until interrupted (an exception)."""
        previous = signal.signal(signal.SIGCHLD, _reap)
        try:
            while True:
                for key, _ in self._selector.select(self._wait()):
                    if key.fileobj is self.listener:
                        self._accept()
                    else:
                        self._advance(key.data)
                self._expire()
        finally:
            signal.signal(signal.SIGCHLD, previous)

    def close(self) -> None:
        """Stop listening; drop the connections still at the gate."""
        for handshake in list(self._pending):
            self._drop(handshake)
        self._selector.close()
        self.listener.close()

    def _wait(self) -> float | None:
        if not self._pending:
            return None
        return max(0.0, min(h.deadline for h in self._pending) - time.monotonic())

    def _accept(self) -> None:
        while True:
            try:
                sock, peer = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:   # out of file descriptors, for one
                log.warning("cannot accept a connection: %s", exc)
                return
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if len(self._pending) >= self.max_pending:
                if not self._full:
                    self._full = True
                    log.warning("%d connections are waiting at the gate (--max-pending): "
                                "closing new ones at once until some are through",
                                len(self._pending))
                log.info("%s refused: too many connections waiting at the gate", peer)
                sock.close()
            else:
                sock.setblocking(False)
                try:
                    handshake = ServerHandshake(sock, self.context, self.secret,
                                                time.monotonic() + self.auth_timeout,
                                                first_bytes=True)
                except (OSError, ValueError) as exc:   # gone already
                    log.info("%s failed at the gate: %s", peer, exc)
                    sock.close()
                    continue
                self._pending[handshake] = 0
                self._advance(handshake)

    def _advance(self, handshake: ServerHandshake) -> None:
        try:
            events = handshake.step()
        except OSError as exc:   # ConnectionError included: the client failed
            log.info("%s failed at the gate: %s", handshake.peer, exc)
            self._drop(handshake)
            return
        if events:
            if not self._pending[handshake]:
                self._selector.register(handshake.sock, events, handshake)
            elif events != self._pending[handshake]:
                self._selector.modify(handshake.sock, events, handshake)
            self._pending[handshake] = events
            return
        self._forget(handshake)
        log.info("%s through the gate: forking its process", handshake.peer)
        self._fork(handshake.sock, handshake.credentials)

    def _expire(self) -> None:
        now = time.monotonic()
        for handshake in [h for h in self._pending if h.deadline <= now]:
            log.info("%s not through the gate within %g s (--auth-timeout): closed",
                     handshake.peer, self.auth_timeout)
            self._drop(handshake)

    def _forget(self, handshake: ServerHandshake) -> None:
        if self._pending.pop(handshake):
            self._selector.unregister(handshake.sock)
        if self._full and len(self._pending) < self.max_pending:
            self._full = False

    def _drop(self, handshake: ServerHandshake) -> None:
        self._forget(handshake)
        handshake.sock.close()

    def _fork(self, sock: socket.socket, credentials: Any) -> None:
        """Serve ``sock`` in a new process of its own; this process lets go of it."""
        try:
            pid = os.fork()
        except OSError as exc:
            log.warning("cannot fork a process for a connection: %s", exc)
            sock.close()
            return
        if pid:
            sock.close()
            return
        status = 0
        try:   # the connection's process: nothing but this connection
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            end_with_parent(self._main)
            for handshake in self._pending:
                handshake.sock.close()
            self._selector.close()
            self.listener.close()
            # Tells the remote worker's agent that this process serves its
            # connection alone (see imap_agent_heartbeat).
            sys.modules.setdefault(CONNECTION_MARK, types.ModuleType(CONNECTION_MARK))
            _serve_connection(sock, credentials)
        except OSError as exc:   # the client went away without closing
            log.info("connection ended: %s", exc)
        except BaseException:
            log.exception("the connection process ended with an error")
            status = 1
        finally:
            os._exit(status)


def _listening_address(host: str, port: int) -> str:
    """``host:port`` as ``worker_remote`` takes it (``[v6]:port`` for IPv6)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the server until interrupted (the ``imap-server`` console script)."""
    parser = _parser()
    args = parser.parse_args(argv)
    host = _bind_host(args.host, parser)
    secret = _read_secret(args, parser)
    if (args.keyfile or args.ca_certs) and not args.certfile:
        parser.error("--keyfile and --ca-certs need --certfile")
    if not (args.certfile or secret or args.insecure or _is_loopback(host)):
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
    try:
        server = Server(host, args.port, context, secret, args.auth_timeout, args.max_pending)
    except OSError as exc:
        parser.exit(1, f"imap-server: cannot listen on "
                       f"{_listening_address(host, args.port)}: {exc}\n")
    parent = os.getpid()

    def terminate(signum: int, frame: object) -> None:
        if os.getpid() == parent:
            raise _Terminated  # out of the accept loop; close() below
        else:  # a connection's process: end at once
            os._exit(128 + signum)

    try:
        signal.signal(signal.SIGTERM, terminate)
        print(f"imap-server listening on {_listening_address(server.host, server.port)}",
              flush=True)
        server.serve_forever()
    except (KeyboardInterrupt, _Terminated):
        pass
    finally:
        server.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

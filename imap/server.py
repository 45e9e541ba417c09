"""``imap-server``: a classic RPyC server for remote IMap workers.

Each accepted connection is served by its own forked process, so one host
uses all its cores (one remote worker = one connection = one process).
Authentication (TLS, then a shared secret; see :mod:`imap.auth`) happens in
that process before the first RPyC request is read, so a client that fails it
executes nothing.

A connection's process never outlives the server's main process: on Linux
the kernel kills it when the main process ends, however that ends (SIGKILL
included) -- ``prctl(PR_SET_PDEATHSIG, SIGKILL)``, set just after the fork;
elsewhere a thread in it polls its parent pid and ends it within
``PARENT_POLL`` seconds of a change. So killing the main process never leaves
connection processes computing for nobody.

Run it as ``imap-server`` or ``python -m imap.server``; see ``--help`` and
the "Remote workers" page of the documentation. This module holds the
command line and the server; :func:`imap.embedded.local` starts one on a free
loopback port for examples and tests.
"""

from __future__ import annotations

import argparse
import ctypes
import importlib
import ipaddress
import logging
import os
import signal
import socket
import ssl
import sys
import threading
import time
import types
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .auth import AUTH_TIMEOUT, DEFAULT_PORT, Authenticator

log = logging.getLogger("imap.server")

CONNECTION_MARK = "_imap_server_connection"  # a module in sys.modules of a connection's process
PR_SET_PDEATHSIG = 1  # prctl option (linux/prctl.h): a signal for when the parent ends
PARENT_POLL = 0.5     # seconds between checks of the parent, where prctl is missing

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
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1; IPv6 as ::1 or [::1])")
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


# --- a connection's process ends with the main process -------------------------------


def _kernel_kills_orphan() -> bool:
    """Ask Linux to SIGKILL this process when its parent ends; True if it will."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return False
    return prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0


def _watch_parent(parent: int, interval: float) -> None:
    """End this process once its parent is no longer ``parent`` (it ended)."""
    while os.getppid() == parent:
        time.sleep(interval)
    os._exit(1)


def end_with_parent(parent: int, kernel: bool = True) -> None:
    """Make this process (just forked from ``parent``) end when ``parent`` ends.

    With ``kernel`` and on Linux, the kernel sends SIGKILL (see
    :func:`_kernel_kills_orphan`); otherwise a daemon thread polls
    ``os.getppid()`` every :data:`PARENT_POLL` seconds. A parent that ended
    before this was set up is caught by the check that follows, so no fork
    slips through.
    """
    if not (kernel and _kernel_kills_orphan()):
        threading.Thread(target=_watch_parent, args=(parent, PARENT_POLL),
                         name="imap-server-parent", daemon=True).start()
    if os.getppid() != parent:  # it ended before the kernel was asked
        os._exit(1)


def _forking_server(**kwargs: Any) -> Any:
    """rpyc's ``ForkingServer`` whose connection processes end with the main process.

    Its accept loop, and so every fork, runs in the main thread, the thread
    whose end ``PR_SET_PDEATHSIG`` watches: the signal comes when the process
    ends, not before.
    """
    from rpyc.utils.server import ForkingServer

    main_pid = os.getpid()

    class Server(ForkingServer):
        def _authenticate_and_serve_client(self, sock: socket.socket) -> None:
            # Called in the connection's process, just after the fork, before
            # the client is authenticated or served.
            if os.getpid() != main_pid:
                end_with_parent(main_pid)
                # Tells the remote worker's agent that this process serves
                # its connection alone (see imap_agent_heartbeat).
                sys.modules.setdefault(CONNECTION_MARK, types.ModuleType(CONNECTION_MARK))
            super()._authenticate_and_serve_client(sock)

    return Server(**kwargs)


def _listening_address(host: str, port: int) -> str:
    """``host:port`` as ``worker_remote`` takes it (``[v6]:port`` for IPv6)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the server until interrupted (the ``imap-server`` console script)."""
    parser = _parser()
    args = parser.parse_args(argv)
    secret = _read_secret(args, parser)
    if (args.keyfile or args.ca_certs) and not args.certfile:
        parser.error("--keyfile and --ca-certs need --certfile")
    host = args.host  # an IPv6 address may come in brackets, as in worker_remote
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
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

    from rpyc.core.service import ClassicService

    authenticator = None
    if context or secret:
        authenticator = Authenticator(context, secret, args.auth_timeout)
    server = _forking_server(
        service=ClassicService, hostname=host, ipv6=":" in host, port=args.port,
        reuse_addr=True, authenticator=authenticator, logger=log,
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
        print(f"imap-server listening on {_listening_address(server.host, server.port)}",
              flush=True)
        server.start()
    except (KeyboardInterrupt, _Terminated):
        pass
    finally:
        server.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

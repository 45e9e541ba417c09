"""The embedded default: a local ``imap-server`` for examples and tests.

:func:`local` starts ``python -m imap.server`` on a free loopback port, in a
session of its own, waits until it listens and yields the address list for
``IMap(worker_remote=...)``; leaving the ``with`` block kills the server and
every connection process it forked. Nothing else needs to be installed or
configured, so an example can show remote workers on any machine.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

_OPTION_FLAGS = {"certfile": "--certfile", "keyfile": "--keyfile", "ca_certs": "--ca-certs",
                 "secret_file": "--secret-file", "secret_env": "--secret-env",
                 "log_level": "--log-level", "auth_timeout": "--auth-timeout",
                 "max_pending": "--max-pending"}


@contextlib.contextmanager
def local(n: int = 2, timeout: float = 30.0, path: Sequence[str] = (),
          **options: str) -> Iterator[list[tuple[str, int]]]:
    """Run an ``imap-server`` on a free loopback port for the ``with`` block.

    Args:
        n: remote workers (connections) to offer in the yielded address list.
        timeout: seconds to wait for the server to listen.
        path: directories to put first on the server's module path (its
            ``PYTHONPATH``): modules that this server has and others lack,
            as on unlike hosts (see ``imap.require``).
        **options: server options by name: ``certfile``, ``keyfile``,
            ``ca_certs``, ``secret_file``, ``secret_env``, ``auth_timeout``,
            ``max_pending``, ``log_level``.

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
    if isinstance(path, str):
        raise TypeError("local(path=...) takes a list of directories, not one string")
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [*map(str, path), package_root, env.get("PYTHONPATH")]))
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

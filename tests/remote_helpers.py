"""Functions and server launchers for the remote-worker tests.

The functions are sent to remote servers by value (the test modules register
this module with ``cloudpickle.register_pickle_by_value``), so the servers need
nothing of this source tree. This module imports nothing of ``imap`` except in
the launchers, which run only in the test process.
"""

from __future__ import annotations

import atexit
import functools
import os
import re
import selectors
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from support import kill_group

import imap

ROOT = Path(__file__).resolve().parent.parent
SIDE = "IMAP_TEST_SIDE"   # set to "remote" in the environment of test servers


def inc(x):
    return x + 1


def double(x):
    return 2 * x


def writeable_and_sum(x):
    """Whether the worker may write into array ``x``, and its sum."""
    return bool(x.flags.writeable), float(x.sum())


def transport_here(x):
    """``(x, kinds)``: the methods (recv, send, stream write) of the rpyc
    channels in this (server) process -- tuned or rpyc's own."""
    import gc

    from rpyc.core.channel import Channel

    kinds = {(type(o).recv.__name__, type(o).send.__name__, type(o.stream).write.__name__)
             for o in gc.get_objects() if isinstance(o, Channel)}
    return x, sorted(kinds)


def fail_on_three(x):
    if x == 3:
        raise ValueError(f"item {x} is bad")
    return x


def touch(x, directory):
    """Create a marker file; it must never appear when authentication fails."""
    Path(directory, f"marker-{x}").write_text("ran")
    return x


def hold_on_remote(x, directory):
    """On a test server: announce the item, then hold it until killed. Locally: 2x."""
    if os.environ.get(SIDE) == "remote":
        Path(directory, f"held-{x}").write_text("held")
        while True:
            time.sleep(0.05)
    return 2 * x


def json_dumps(x):
    return json.dumps({"x": x})  # noqa: F821  (json comes from @imports)


def make_json_dumps():
    """``json_dumps`` under ``@imports(["json"])`` (imap is imported only here)."""
    from imap import imports

    return imports(["json"])(json_dumps)


def where(x):
    return os.environ.get(SIDE, "local")


def busy(x, n=15_000):
    """About 2 ms of pure-Python work."""
    total = 0
    for i in range(n):
        total += (i * x) % 7
    return total


def _read_until(stream, pattern: re.Pattern, timeout: float) -> re.Match:
    deadline = time.monotonic() + timeout
    buffer = b""
    with selectors.DefaultSelector() as sel:
        sel.register(stream, selectors.EVENT_READ)
        while True:
            match = pattern.search(buffer.decode(errors="replace"))
            if match:
                return match
            left = deadline - time.monotonic()
            if left <= 0 or not sel.select(left):
                raise AssertionError(f"server did not start within {timeout} s: {buffer!r}")
            chunk = os.read(stream.fileno(), 4096)
            if not chunk:
                raise AssertionError(f"server exited before listening: {buffer!r}")
            buffer += chunk


def rpyc_classic_command() -> list[str]:
    """The stock ``rpyc_classic`` script next to this Python, else the module."""
    for name in ("rpyc_classic", "rpyc_classic.py"):
        script = Path(sys.executable).with_name(name)
        if script.exists():
            return [sys.executable, str(script)]
    return [sys.executable, "-m", "rpyc.cli.rpyc_classic"]


@functools.cache
def _stock_shadow() -> Path:
    """A directory whose ``imap`` and ``papy`` modules refuse to import:
    first on a stock server's path, it hides an installed copy of the project.
    One per test process, removed when it exits."""
    directory = Path(tempfile.mkdtemp(prefix="imap-stock-shadow-"))
    atexit.register(shutil.rmtree, directory, True)
    for name in ("imap", "papy"):
        (directory / f"{name}.py").write_text(
            f"raise ImportError('{name} is not installed on this (stock) server')\n")
    return directory


@contextmanager
def server(kind: str = "imap", args: tuple = (), env: dict | None = None,
           log: Path | None = None):
    """Start a server on 127.0.0.1 in its own session; yield ``(address, Popen)``.

    ``kind``: "imap" (``python -m imap.server``), "classic" (stock threaded
    ``rpyc_classic``) or "classic-forking". ``log``: a file that gets an
    ``imap`` server's stderr (its log).
    """
    full_env = dict(os.environ, **(env or {}))
    full_env[SIDE] = "remote"
    if kind == "imap":
        full_env["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(ROOT), full_env.get("PYTHONPATH")]))
        cmd = [sys.executable, "-m", "imap.server", "--port", "0", *args]
        pattern, from_stdout = re.compile(r"imap-server listening on [^:]+:(\d+)"), True
    else:
        # A stock server: nothing of this tree, even where the project is
        # installed in the interpreter (as in the test venv).
        full_env["PYTHONPATH"] = str(_stock_shadow())
        mode = ["--mode", "forking"] if kind == "classic-forking" else []
        cmd = [*rpyc_classic_command(), "--host", "127.0.0.1", "--port", "0", *mode, *args]
        pattern, from_stdout = re.compile(r"server started on \[[^\]]+\]:(\d+)"), False
    log_file = open(log, "wb") if log is not None else None   # noqa: SIM115 - closed below
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE if not from_stdout else log_file,
                            env=full_env, cwd="/", start_new_session=True)
    try:
        match = _read_until(proc.stdout if from_stdout else proc.stderr, pattern, 30)
        yield f"127.0.0.1:{match.group(1)}", proc
    finally:
        kill_group(proc)
        for stream in (proc.stdout, proc.stderr, log_file):
            if stream is not None:
                stream.close()


def collect(iterator) -> list:
    """Every result of ``iterator``; a raised exception takes its result's place."""
    out = []
    while True:
        try:
            out.append(next(iterator))
        except StopIteration:
            return out
        except Exception as exc:
            out.append(exc)


def wait_for_file(x, path):
    """Return ``x`` once ``path`` exists (the test decides when)."""
    while not os.path.exists(path):
        time.sleep(0.01)
    return x


def raise_local_class_on(x, bad):
    """Raise an exception of a class only cloudpickle can carry (see worker_funcs)."""
    if x == bad:
        class LocalError(Exception):
            pass

        raise LocalError(f"local failure on {x}")
    return x


def children_of(pid: int) -> set[int]:
    """The live (not zombie) processes whose parent is ``pid`` (reads /proc)."""
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                state, ppid = handle.read().rsplit(")", 1)[1].split()[:2]
        except (OSError, ValueError):
            continue  # ended while we looked
        if int(ppid) == pid and state not in ("Z", "X"):
            found.add(int(entry))
    return found


# An impostor: whatever answers on a port a client was told to use. It serves
# rpyc's classic service well enough for a client to run its batches, and on
# the way tries every route into the client it can think of, through the
# connection: the client's service (execute, eval, getmodule, namespace) while
# the client uploads its agent, and the heartbeat callable the client hands
# over. Each attempt adds a line ``NAME: outcome`` to its report: "RAN" (it
# wrote ``ran-NAME`` in the report directory), "REACHED" (it got at what it
# asked for) or "refused" and the exception.
#
# argv: report directory, then "plain", or "replay" with two hex strings: the
# bytes a real server sent before and after the client's answer in a recorded
# secret handshake, replayed to every client before the classic service.
IMPOSTOR = r'''
import os, socket, sys, threading
import rpyc
from rpyc.core.service import SlaveService
from rpyc.core.stream import SocketStream

report_dir, mode = sys.argv[1], sys.argv[2]
lock = threading.Lock()

def report(name, outcome):
    with lock, open(os.path.join(report_dir, "report"), "a") as f:
        f.write(f"{name}: {outcome}\n")

def attempt(name, attack):
    marker = os.path.join(report_dir, "ran-" + name)
    try:
        attack(marker)
    except Exception as exc:
        report(name, f"refused {type(exc).__name__}")
    else:
        report(name, "RAN" if os.path.exists(marker) else "REACHED")

def write(marker):
    return f"open({marker!r}, 'w').close()"

def attack_service(conn):
    root = conn.root
    attempt("root-execute", lambda m: root.execute(write(m)))
    attempt("root-eval", lambda m: root.eval(f"exec({write(m)!r})"))
    attempt("root-getmodule", lambda m: root.getmodule("builtins").exec(write(m)))
    attempt("root-namespace", lambda m: root.namespace.keys())

def attack_callable(beat):
    def globals_of(m):
        beat.__func__.__globals__["__builtins__"]["exec"](write(m))
    def owner_of(m):
        beat.__self__.__class__.__init__.__globals__["__builtins__"]["exec"](write(m))
    def attribute(m):   # (beat.__class__ is answered locally: rpyc maps builtin types)
        beat.__call__.__self__.__self__.__dict__
    def pickled(m):
        rpyc.classic.obtain(beat)
    attempt("callback-globals", globals_of)
    attempt("callback-owner", owner_of)
    attempt("callback-attribute", attribute)
    attempt("callback-pickle", pickled)

class Impostor(SlaveService):
    def execute(self, text):
        attack_service(self._conn)
        super().execute(text)
        real = self.namespace.get("imap_agent_heartbeat")
        if real is not None:
            def heartbeat(beat, interval):
                attack_callable(beat)
                return real(beat, interval)
            self.namespace["imap_agent_heartbeat"] = heartbeat

def serve(sock):
    try:
        if mode == "replay":
            before, after = bytes.fromhex(sys.argv[3]), bytes.fromhex(sys.argv[4])
            sock.sendall(before)
            sock.recv(4096)   # the client's answer, whatever it is
            report("replay", "sending the recorded proof")   # before the client can see it
            sock.sendall(after)
        conn = rpyc.utils.factory.connect_stream(
            SocketStream(sock), Impostor, config={"sync_request_timeout": None})
        conn.serve_all()
    except Exception as exc:
        report("connection", f"ended {type(exc).__name__}")

listener = socket.create_server(("127.0.0.1", 0))
print(f"impostor listening on 127.0.0.1:{listener.getsockname()[1]}", flush=True)
while True:
    sock, _ = listener.accept()
    threading.Thread(target=serve, args=(sock,), daemon=True).start()
'''


@contextmanager
def impostor(report_dir: Path, *args: str):
    """Run the :data:`IMPOSTOR` on 127.0.0.1 in its own session; yield its address."""
    proc = subprocess.Popen([sys.executable, "-c", IMPOSTOR, str(report_dir), *args],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            env=dict(os.environ, PYTHONPATH=str(_stock_shadow())),
                            cwd="/", start_new_session=True)
    try:
        match = _read_until(proc.stdout, re.compile(r"impostor listening on [^:]+:(\d+)"), 30)
        yield f"127.0.0.1:{match.group(1)}"
    finally:
        kill_group(proc)
        proc.stdout.close()


def impostor_report(report_dir: Path) -> dict[str, str]:
    """The impostor's report: attack name -> outcome."""
    path = report_dir / "report"
    if not path.exists():
        return {}
    return dict(line.split(": ", 1) for line in path.read_text().splitlines())


# -- functional dependencies: a module only some hosts have ---------------------------

PROBE = "imap_dep_probe"   # the module that only the capable host can import


def write_probe_module(directory) -> str:
    """Write the probe module into ``directory``; return the directory (for
    the capable host's PYTHONPATH)."""
    with open(os.path.join(str(directory), f"{PROBE}.py"), "w") as f:
        f.write("VALUE = 'from the probe module'\n")
    return str(directory)


@imap.require(PROBE)
def probe(x):
    """(x, the probe module's VALUE): the module is a global of this
    function on a host where it imports (imap.require makes it one)."""
    return (x, imap_dep_probe.VALUE)  # noqa: F821 - a global there, made by imap.require


@imap.require("imap_dep_probe_nowhere")
def probe_nowhere(x):
    return x


@imap.require(PROBE)
def papy_probe(inbox):
    """A papy worker function (its inbox is a tuple, one item per input)."""
    return (inbox[0], imap_dep_probe.VALUE)  # noqa: F821

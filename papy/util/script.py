"""Script nodes: an external program (shell, Python, R, ...) as a pipeline step.

A script node runs one program per item, with files in and files out, the way
PaPy 1.x's ``papy.util.script`` wrapped existing tools. Its worker function
is :func:`script`, given a *configuration* dict as its extra argument::

    from papy import Piper, Worker
    from papy.util.script import get_config, script

    cfg = get_config("bash")
    cfg.update({"id": "sh", "script": "greet.sh", "dir": "/data/run1",
                "in": ("message",), "out": (("greeting", "txt"),)})
    node = Piper(Worker(script, (cfg,)), parallel=imap.IMap())
    node([[{"message": "/data/hello.txt"}]])   # items: {port: path}

**Items are dicts of files.** Each element of the inbox (one per upstream
pipe) maps *port names* to file paths, e.g. ``{"message": "a.txt"}``; the
result is such a dict for the node's output ports, so script nodes chain.

**The configuration** (the keys of PaPy 1.x):

``id``
    the node's name; part of the output file names.
``executable``, ``script``
    the program and the script it runs: the command is
    ``[executable, script, ARGS]``, run without a shell.
``in``
    the input ports (a sequence of names), each looked up in the inbox's
    dicts (the first dict that has it wins).
``out``
    the output ports: ``(name, extension)`` pairs.
``params``
    a dict handed to the script as is.
``dir``
    the directory of the output files (made if missing).
``evaluator``, ``preamble``
    optional: a shell (``evaluator``, e.g. ``"bash"``) that runs the shell
    code ``preamble`` first (e.g. ``module load samtools``), then the
    command. The command travels as the shell's positional arguments
    (``"$@"``), never pasted into shell code, so no item data is interpreted
    by a shell. Empty ``preamble``: the command runs directly.
``timeout``
    optional: seconds before the program is killed (an error for the item).

**What the script receives.** ``ARGS`` is the path of a JSON file with
``{"params": {...}, "in": {port: path}, "out": {port: path}}``: the script
reads its inputs from ``in``, writes each output to its path in ``out``.
:func:`write_template` writes a starting script that loads it (Python, bash,
R). The file is removed after the run.

**Output names** (as in PaPy 1.x): in ``dir``, the name of the first input
file without its extension, ``_``, then ``<id>-<port>.<extension>``; where
the input and output ports pair one to one (same count, same names), the i-th
output is named after the i-th input and ``<id>.<extension>``.

**Failure.** A program that exits non-zero (or cannot be started, or runs
out of time) raises :class:`ScriptError`, carrying its exit code, stdout and
stderr; in a pipeline the item becomes a ``PiperError`` in its place, whose
text ends with the program's stderr.

The function is module-level, so it runs on thread, process and remote
workers (the script, its inputs and ``dir`` must be reachable there).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["ScriptError", "script", "get_config", "write_template", "TEMPLATES"]

log = logging.getLogger("papy")

#: The most characters of a program's stderr kept in a ScriptError's text.
STDERR_SHOWN = 4000


class ScriptError(Exception):
    """An external program of a script node failed.

    Attributes:
        returncode: its exit code (``None``: it could not be started or ran
            out of time).
        command: the command run (a list of strings).
        stdout, stderr: what it wrote (text).
    """

    def __init__(self, message: str, returncode: int | None = None,
                 command: Sequence[str] = (), stdout: str = "", stderr: str = "") -> None:
        super().__init__(message, returncode, list(command), stdout, stderr)
        self.message = message
        self.returncode = returncode
        self.command = list(command)
        self.stdout = stdout
        self.stderr = stderr

    def __reduce__(self) -> tuple:
        return (ScriptError, (self.message, self.returncode, self.command, self.stdout,
                              self.stderr))

    def __str__(self) -> str:
        text = self.message
        stderr = self.stderr.strip()
        if stderr:
            if len(stderr) > STDERR_SHOWN:
                stderr = "..." + stderr[-STDERR_SHOWN:]
            text += f"; its stderr:\n{stderr}"
        return text


def _inputs(inbox: Sequence[Any], ports: Sequence[str]) -> dict[str, str]:
    """Per input port, the path of the first dict of the inbox that has it."""
    found: dict[str, str] = {}
    for port in ports:
        for element in inbox:
            if isinstance(element, Mapping) and element.get(port) is not None:
                found[port] = element[port]
                break
    missing = [p for p in ports if p not in found]
    if missing:
        given = [sorted(e) if isinstance(e, Mapping) else type(e).__name__ for e in inbox]
        raise ValueError(f"script node: input port(s) {missing} not in the inbox, whose "
                         f"elements have {given}; an item is a dict of port name -> path")
    return found


def _outputs(cfg: Mapping[str, Any], inputs: dict[str, str]) -> dict[str, str]:
    """Per output port, the path of the file the script is to write."""
    in_ports = tuple(cfg["in"])
    out = tuple((port, ext) for port, ext in cfg["out"])
    paired = in_ports == tuple(port for port, _ in out)
    paths = {}
    for i, (port, ext) in enumerate(out):
        source = inputs[in_ports[i] if paired else in_ports[0]]
        stem = os.path.basename(source).split(".")[0]
        base = cfg["id"] if paired else f"{cfg['id']}-{port}"
        name = f"{stem}_{base}.{ext}" if ext else f"{stem}_{base}"
        paths[port] = os.path.join(cfg["dir"], name)
    return paths


def _command(cfg: Mapping[str, Any], args_path: str) -> list[str]:
    command = [str(cfg["executable"]), str(cfg["script"]), args_path]
    preamble = cfg.get("preamble") or ""
    if preamble.strip():
        shell = cfg.get("evaluator") or "bash"
        # the command reaches the shell as its arguments: "$@" runs them as is
        return [shell, "-c", f'{preamble}\n"$@"', shell, *command]
    return command


def script(inbox: Sequence[Any], cfg: Mapping[str, Any]) -> dict[str, str]:
    """Run the configured program on one item; return ``{output port: path}``.

    Args:
        inbox: one dict of ``{port: path}`` per upstream pipe.
        cfg: the node's configuration (see the module's documentation).

    Raises:
        ScriptError: the program exited non-zero, could not be started, or
            outlived ``cfg["timeout"]``.
        ValueError: an input port is not in the inbox, or a key is missing.
    """
    missing = [k for k in ("id", "executable", "script", "in", "out", "dir") if k not in cfg]
    if missing:
        raise ValueError(f"script node configuration lacks {missing}; start from "
                         f"get_config(lang)")
    inputs = _inputs(inbox, cfg["in"])
    outputs = _outputs(cfg, inputs)
    os.makedirs(cfg["dir"], exist_ok=True)
    args = {"params": dict(cfg.get("params") or {}), "in": inputs, "out": outputs}
    handle, args_path = tempfile.mkstemp(prefix=f"papy-{cfg['id']}-", suffix=".json",
                                         dir=cfg["dir"])
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(args, out)
        command = _command(cfg, args_path)
        log.debug("script node %r runs %s", cfg["id"], command)
        try:
            done = subprocess.run(command, capture_output=True, text=True, check=False,
                                  timeout=cfg.get("timeout"), stdin=subprocess.DEVNULL)
        except OSError as exc:
            raise ScriptError(f"script node {cfg['id']!r} could not start {command[0]!r}: "
                              f"{exc}", None, command) from exc
        except subprocess.TimeoutExpired as exc:
            raise ScriptError(f"script node {cfg['id']!r}: {cfg['script']} ran longer than "
                              f"{cfg['timeout']} s and was killed", None, command,
                              _text(exc.stdout), _text(exc.stderr)) from exc
    finally:
        os.remove(args_path)
    if done.returncode != 0:
        raise ScriptError(f"script node {cfg['id']!r}: {cfg['script']} exited with code "
                          f"{done.returncode}", done.returncode, command, done.stdout,
                          done.stderr)
    return outputs


def _text(data: Any) -> str:
    if isinstance(data, bytes):
        return data.decode(errors="replace")
    return data or ""


def get_config(lang: str = "python") -> dict[str, Any]:
    """A configuration to start from for a script in ``lang``.

    ``"python"`` (run by the interpreter running this, ``sys.executable``),
    ``"bash"`` or ``"R"`` (``Rscript``). Fill in ``id``, ``script``, ``in``,
    ``out`` and ``params``; ``dir`` is the current directory.
    """
    executables = {"python": sys.executable, "bash": "bash", "R": "Rscript"}
    if lang not in executables:
        raise ValueError(f"no script configuration for {lang!r}; choose one of "
                         f"{sorted(executables)}")
    return {"id": lang, "evaluator": "bash", "preamble": "", "dir": os.getcwd(),
            "executable": executables[lang], "script": f"script.{_SUFFIX[lang]}",
            "in": ("input",), "out": (("output", "txt"),), "params": {}}


_SUFFIX = {"python": "py", "bash": "sh", "R": "R"}

#: The start of a script in each language: it loads the JSON file of its
#: arguments into ``PARAMS``, ``IN`` and ``OUT`` (port -> path).
TEMPLATES = {
    "python": """\
import json
import sys

with open(sys.argv[1]) as handle:
    ARGS = json.load(handle)
PARAMS, IN, OUT = ARGS["params"], ARGS["in"], ARGS["out"]
# read IN["<port>"], write OUT["<port>"]
""",
    "bash": """\
#!/usr/bin/env bash
# PARAMS, IN and OUT become bash associative arrays (port -> path)
set -euo pipefail
eval "$(python3 - "$1" <<'EOF'
import json, shlex, sys
args = json.load(open(sys.argv[1]))
for name in ("params", "in", "out"):
    pairs = " ".join(f"[{shlex.quote(str(k))}]={shlex.quote(str(v))}"
                     for k, v in args[name].items())
    print(f"declare -A {name.upper()}=({pairs})")
EOF
)"
# read "${IN[<port>]}", write "${OUT[<port>]}"
""",
    "R": """\
library(jsonlite)
ARGS <- fromJSON(commandArgs(trailingOnly = TRUE)[1])
PARAMS <- ARGS$params
IN <- ARGS$`in`
OUT <- ARGS$out
# read IN$<port>, write OUT$<port>
""",
}


def write_template(path: str, lang: str = "python") -> None:
    """Write the start of a script in ``lang`` (see :data:`TEMPLATES`) to ``path``."""
    if lang not in TEMPLATES:
        raise ValueError(f"no script template for {lang!r}; choose one of "
                         f"{sorted(TEMPLATES)}")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(TEMPLATES[lang])

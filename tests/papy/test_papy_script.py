"""papy.util.script: an external program per item, files in and out, on every worker."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from remote_helpers import server

from imap import IMap
from papy import Dagger, Piper, PiperError, Worker
from papy.util.script import ScriptError, get_config, script, write_template

pytestmark = pytest.mark.timeout(90)

COPY_SH = 'cp "${IN[message]}" "${OUT[greeting]}"\necho "greeted ${PARAMS[who]}"\n'
WRAP_PY = """
with open(IN["greeting"]) as rh, open(OUT["package"], "w") as wh:
    wh.write(PARAMS["prefix"] + rh.read())
"""
FAIL_SH = 'echo "cannot read ${IN[message]}" >&2\nexit 3\n'


def make_script(directory: Path, name: str, lang: str, body: str) -> str:
    path = directory / name
    write_template(str(path), lang)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(body)
    return str(path)


def sh_config(directory: Path, body: str = COPY_SH, **extra) -> dict:
    cfg = get_config("bash")
    cfg.update({"id": "sh", "dir": str(directory / "out"),
                "script": make_script(directory, "node.sh", "bash", body),
                "in": ("message",), "out": (("greeting", "txt"),),
                "params": {"who": "all"}}, **extra)
    return cfg


def py_config(directory: Path) -> dict:
    cfg = get_config("python")
    cfg.update({"id": "py", "dir": str(directory / "out"),
                "script": make_script(directory, "node.py", "python", WRAP_PY),
                "in": ("greeting",), "out": (("package", "txt"),),
                "params": {"prefix": "python says: "}})
    return cfg


def inputs(directory: Path, words=("work moar", "nevar give up")) -> list[dict]:
    items = []
    for i, word in enumerate(words):
        path = directory / f"in{i}.txt"
        path.write_text(word)
        items.append({"message": str(path)})
    return items


def run_chain(directory: Path, imap: IMap | bool) -> list:
    sh = Piper(Worker(script, (sh_config(directory),)), parallel=imap, name="sh")
    py = Piper(Worker(script, (py_config(directory),)), parallel=imap, name="py")
    dag = Dagger(pipes=[(sh, py)])
    dag.connect([inputs(directory)])
    dag.start()
    try:
        return list(py)
    finally:
        dag.stop()


def expected_packages(directory: Path) -> list[dict]:
    return [{"package": str(directory / "out" / f"in{i}_sh-greeting_py-package.txt")}
            for i in range(2)]


def test_script_returns_the_paths_of_its_output_ports(tmp_path) -> None:
    item = inputs(tmp_path)[0]
    out = script([item], sh_config(tmp_path))
    assert out == {"greeting": str(tmp_path / "out" / "in0_sh-greeting.txt")}
    assert Path(out["greeting"]).read_text() == "work moar"


def test_paired_ports_name_each_output_after_its_input(tmp_path) -> None:
    cfg = sh_config(tmp_path, 'cp "${IN[message]}" "${OUT[message]}"\n')
    cfg["out"] = (("message", "txt"),)
    out = script(inputs(tmp_path)[:1], cfg)
    assert out == {"message": str(tmp_path / "out" / "in0_sh.txt")}


def test_script_nodes_chain_inline(tmp_path) -> None:
    assert run_chain(tmp_path, False) == expected_packages(tmp_path)
    text = Path(expected_packages(tmp_path)[1]["package"]).read_text()
    assert text == "python says: nevar give up"


def test_script_nodes_chain_on_process_workers(tmp_path) -> None:
    with IMap(worker_type="process", worker_num=2) as m:
        assert run_chain(tmp_path, m) == expected_packages(tmp_path)


def test_script_nodes_run_on_remote_workers(tmp_path) -> None:
    with server("imap") as (address, _):
        m = IMap(worker_type="thread", worker_num=0, worker_remote=[(address, 2)])
        try:
            assert run_chain(tmp_path, m) == expected_packages(tmp_path)
        finally:
            m.stop(forced=True)


def test_non_zero_exit_is_a_piper_error_with_the_stderr(tmp_path) -> None:
    cfg = sh_config(tmp_path, FAIL_SH)
    with IMap(worker_type="process", worker_num=1) as m:
        p = Piper(Worker(script, (cfg,)), parallel=m, name="sh")
        p([inputs(tmp_path)[:1]])
        p.start()
        (out,) = list(p)
        p.stop()
    assert isinstance(out, PiperError) and out.piper == "sh"
    error = out.error.exception
    assert isinstance(error, ScriptError) and error.returncode == 3
    assert "cannot read" in error.stderr and "cannot read" in str(out)


def test_item_data_is_never_run_by_a_shell(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)   # where a shell that ran the name would touch
    name = tmp_path / "$(touch trapped); touch trapped2 `touch trapped3`"
    name.write_text("odd name")
    cfg = sh_config(tmp_path, preamble="true")   # through the evaluator shell too
    out = script([{"message": str(name)}], cfg)
    assert Path(out["greeting"]).read_text() == "odd name"
    assert sorted(p.name for p in tmp_path.glob("trapped*")) == []


def test_the_arguments_file_is_removed(tmp_path) -> None:
    script(inputs(tmp_path)[:1], sh_config(tmp_path))
    with pytest.raises(ScriptError):
        script(inputs(tmp_path)[:1], sh_config(tmp_path, FAIL_SH))
    assert [p for p in os.listdir(tmp_path / "out") if p.endswith(".json")] == []


def test_preamble_runs_before_the_program(tmp_path) -> None:
    body = 'echo "$GREETING" > "${OUT[greeting]}"\n'
    cfg = sh_config(tmp_path, body, preamble="export GREETING=hello")
    out = script(inputs(tmp_path)[:1], cfg)
    assert Path(out["greeting"]).read_text() == "hello\n"


def test_missing_input_port_names_the_port(tmp_path) -> None:
    with pytest.raises(ValueError, match=r"input port\(s\) \['message'\]"):
        script([{"other": "x"}], sh_config(tmp_path))


def test_a_program_that_cannot_start_is_a_script_error(tmp_path) -> None:
    cfg = sh_config(tmp_path, executable=str(tmp_path / "no-such-program"))
    with pytest.raises(ScriptError, match="could not start"):
        script(inputs(tmp_path)[:1], cfg)


def test_a_program_past_its_timeout_is_killed(tmp_path) -> None:
    cfg = py_config(tmp_path)
    cfg.update({"in": ("message",), "timeout": 0.5,
                "script": make_script(tmp_path, "hang.py", "python",
                                      "import threading\nthreading.Event().wait(60)\n")})
    with pytest.raises(ScriptError, match="ran longer than 0.5 s"):
        script(inputs(tmp_path)[:1], cfg)


def test_get_config_refuses_an_unknown_language() -> None:
    with pytest.raises(ValueError, match="choose one of"):
        get_config("cobol")


def test_python_config_runs_this_interpreter() -> None:
    assert get_config("python")["executable"] == sys.executable

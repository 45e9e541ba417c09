"""The documented worker-log format works for every record of the process."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from support import script_env

SCRIPT = textwrap.dedent('''
    import logging
    import imap
    import worker_funcs as wf

    logging.basicConfig(format="%(worker)s %(name)s: %(message)s", level=logging.INFO)

    def log_in_thread(x):
        logging.getLogger("mine.thread").info("thread item %s", x)
        return x

    if __name__ == "__main__":
        logging.getLogger("mine").info("before the run")
        logging.getLogger("other.library").warning("unrelated")
        with imap.IMap(worker_type="process", worker_num=1) as m:
            task = m.add_task(wf.log_and_return, range(2))
            m.start()
            assert list(task) == [0, 1]
        with imap.IMap(worker_type="thread", worker_num=1) as m:
            task = m.add_task(log_in_thread, range(1))
            m.start()
            assert list(task) == [0]
        logging.getLogger("mine").info("after the run")
''')


def test_the_documented_format_formats_parent_and_worker_records(tmp_path):
    script = tmp_path / "user.py"
    script.write_text(SCRIPT)
    done = subprocess.run([sys.executable, str(script)], env=script_env(), cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    err = done.stderr
    assert "Logging error" not in err
    lines = err.splitlines()
    assert "main mine: before the run" in lines
    assert "main other.library: unrelated" in lines
    assert "main mine: after the run" in lines
    assert any(line.startswith("process ") and "imap_test.worker: item 0" in line
               for line in lines)
    assert any(line.startswith("thread imap-thread-worker") and "thread item 0" in line
               for line in lines)

"""Two script nodes, a bash script then a Python script, files in and out.

Python 3 mechanics: the Python node runs this interpreter (sys.executable)
where the original named its Python 2 ("python").
"""
import os
import sys

from imap import IMap
from papy import Dagger, Piper, Worker
from papy.util.script import script

sh_cfg = {
    "id": "sh",
    "evaluator": "bash",
    "preamble": "",
    "dir": os.getcwd(),
    "executable": "bash",
    "script": "bash_script.sh",
    "in": ("message",),
    "out": (
        ("greeting", "txt"),
    ),
    "params": {
    }
}

py_cfg = {
    "id": "py",
    "evaluator": "bash",
    "preamble": "",
    "dir": os.getcwd(),
    "executable": sys.executable,
    "script": "python_script.py",
    "in": (
        "greeting",
    ),
    "out": (
        ("package", "txt"),
    ),
    "params": {
    }
}

sh_worker = Worker(script, (sh_cfg,))
py_worker = Worker(script, (py_cfg,))

if __name__ == "__main__":
    numap = IMap()   # the engine

    sh_piper = Piper(sh_worker, parallel=numap)   # the nodes
    py_piper = Piper(py_worker, parallel=numap)

    pipeline = Dagger()   # the graph (as the original: its second node is
    pipeline.add_pipe((sh_piper, py_worker))   # made of py_worker, inline)
    end = pipeline.get_outputs()[0]

    pipeline.connect(   # the run
        [[
            {"message": "work_moar.txt"},
            {"message": "nevar_give_up.txt"}
        ]])

    pipeline.start()
    print(list(end))

"""Draw the pipeline of ``examples/pipeline_demo.py`` for the tutorial (``make docs``).

Writes ``doc/figures/demo_pipeline.dot`` (the text of ``Dagger.to_dot()``)
every time, and renders ``doc/figures/demo_pipeline.svg`` from it when the
``graphviz`` package and the Graphviz ``dot`` program are installed. Without
them the SVG in the repository is kept, and the script says so: it never
fails for want of Graphviz. ``tests/papy/test_papy_draw.py`` checks that the
committed DOT text is what the pipeline gives now.
"""

from __future__ import annotations

import sys
from pathlib import Path

DOC = Path(__file__).resolve().parent
ROOT = DOC.parent
FIGURES = DOC / "figures"
NAME = "demo_pipeline"

# The source tree, installed or not, and the example itself.
sys.path[:0] = [str(ROOT), str(ROOT / "examples")]

import pipeline_demo  # noqa: E402

from imap import IMap  # noqa: E402
from papy import Plumber  # noqa: E402


def demo_pipeline() -> Plumber:
    """The demo's pipeline, built by the demo's own ``build`` (not started).

    The demo runs the score branch on an ``imap-server`` it starts on a free
    loopback port, so the drawing names the host without the port, which
    changes from run to run. Nothing connects before ``start()``.
    """
    remote = IMap(worker_type="thread", worker_num=0, worker_remote=[("127.0.0.1", 2)])
    return pipeline_demo.build(remote, "records.jsonl")


def main() -> None:
    plumber = demo_pipeline()
    FIGURES.mkdir(exist_ok=True)
    print(f"wrote {plumber.draw(FIGURES / f'{NAME}.dot')}")
    try:
        print(f"wrote {plumber.draw(FIGURES / f'{NAME}.svg')}")
    except (ImportError, RuntimeError) as exc:
        print(f"kept the committed {NAME}.svg: {exc}")


if __name__ == "__main__":
    main()

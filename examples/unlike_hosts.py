"""Unlike hosts: a task that needs a module only one host has.

Two imap-servers on this machine stand for two hosts: the first has a module
on its path (``gpu_render``, written to a temporary folder here; think of a
GPU library or a licensed program) that the second host, and this process,
lack. ``@imap.require("gpu_render")`` sends the task's tasklets only to the
host where it imports; the other task runs on every host. A task whose
dependency no host meets fails item by item with ``ImpossibleDependency``,
and the rest of the run goes on.
"""

import os
import tempfile

import imap
from imap import IMap
from imap.embedded import local

MODULE = '''
import os

def render(scene):
    return f"scene {scene} rendered by host {os.environ['HOST_NAME']}"
'''


@imap.require("gpu_render")
def render(scene):
    # gpu_render is a global here on a host where it imports (imap.require
    # makes it one): this process never imports it.
    return gpu_render.render(scene)  # noqa: F821


@imap.require("quantum_annealer")
def anneal(problem):
    return problem


def host_name(x):
    return os.environ["HOST_NAME"]


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as folder:
        with open(os.path.join(folder, "gpu_render.py"), "w") as f:
            f.write(MODULE)
        os.environ["HOST_NAME"] = "gpu"
        with local(1, path=[folder]) as gpu_host:
            os.environ["HOST_NAME"] = "plain"
            with local(2) as plain_host:
                del os.environ["HOST_NAME"]
                print(f"hosts: {gpu_host[0][0]} has gpu_render, {plain_host[0][0]} has not")
                with IMap(worker_num=0, worker_remote=gpu_host + plain_host) as m:
                    scenes = m.add_task(render, range(6))
                    hosts = m.add_task(host_name, range(40))
                    hopeless = m.add_task(anneal, range(2))
                    m.start()
                    for line in scenes:
                        print(line)
                    print(f"the plain task ran on: {sorted(set(hosts))}")
                    for _ in range(2):
                        try:
                            next(hopeless)
                        except imap.ImpossibleDependency as exc:
                            print(f"anneal: ImpossibleDependency, refused by "
                                  f"{len(exc.refusals)} workers")
                    status = m.status().tasks[0]
                    print(f"render may run on {list(status.may_run)}; "
                          f"refused by {sorted(status.refused)}")

"""A Plumber runs the pipeline; a tracked piper keeps its results in stats."""
from imap import IMap
from papy import Piper, Plumber


def l33t(inbox):
    word = inbox[0]
    return word.replace('e', '3').replace('o', '0')


def l33ter(inbox):
    word = inbox[0]
    return word.replace('l', '1')


if __name__ == "__main__":
    numap = IMap()   # the engine

    l33t_piper = Piper(l33t, parallel=numap)   # the nodes
    l33ter_piper = Piper(l33ter, parallel=numap, track=True)

    pipeline = Plumber()   # the graph
    pipeline.add_pipe((l33t_piper, l33ter_piper))
    end = pipeline.get_outputs()[0]

    pipeline.start([['hello', 'world']])   # the run
    pipeline.run()
    pipeline.wait()
    print(pipeline.stats['pipers_tracked'][end])
    assert [{0: 'h3110', 1: 'w0r1d'}] == pipeline.stats['pipers_tracked'][end]

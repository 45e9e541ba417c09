"""Two pipers sharing one IMap, joined by a pipe of a Dagger."""
from imap import IMap
from papy import Dagger, Piper


def l33t(inbox):
    word = inbox[0]
    return word.replace('e', '3').replace('o', '0')


def l33ter(inbox):
    word = inbox[0]
    return word.replace('l', '1')


if __name__ == "__main__":
    numap = IMap()   # the engine

    l33t_piper = Piper(l33t, parallel=numap)   # the nodes
    l33ter_piper = Piper(l33ter, parallel=numap)

    pipeline = Dagger()   # the graph
    pipeline.add_pipe((l33t_piper, l33ter_piper))
    end = pipeline.get_outputs()[0]

    pipeline.connect([['hello', 'world']])   # the run
    pipeline.start()
    print(list(end))

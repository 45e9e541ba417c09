"""add_pipe(..., branch=) orders the inputs of a Dagger and of a merge."""
from papy import Dagger, Piper
from papy.util.func import ipasser


def merge(inbox):
    word1 = inbox[0]
    word2 = inbox[1]
    return word1 + word2


if __name__ == "__main__":
    merge_p = Piper(merge)

    inp1_p = Piper(ipasser)
    inp2_p = Piper(ipasser)

    pipeline = Dagger()
    pipeline.add_pipe((inp2_p, merge_p), branch="2")
    pipeline.add_pipe((inp1_p, merge_p), branch="1")

    end = pipeline.get_outputs()[0]
    pipeline.connect([['hello ', 'world '], ["world", "hello"]])
    pipeline.start()
    print(list(end))

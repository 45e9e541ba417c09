"""A stand-in for the two classes of nubio that workflow.py uses.

nubio (the original author's sequence package, numpy arrays of residues) is
not installed here; these keep only what the example touches: a sequence
made from a string, ``str(method, *args)`` applying a ``str`` method to it in
place, and a ``meta`` dict.
"""


class _Seq:
    def __init__(self, seq):
        self.seq = str(seq)
        self.meta = {}

    def str(self, method, *args):
        self.seq = getattr(self.seq, method)(*args)

    def __str__(self):
        return self.seq


class AaSeq(_Seq):
    """An amino-acid sequence."""


class NtSeq(_Seq):
    """A nucleotide sequence."""

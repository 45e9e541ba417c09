"""What a Dask task of an IMap calls: the batch kernel, installed from its source.

Dask workers need nothing of this package. This module travels by value
(it is small, and imports nothing but the standard library); the kernel
travels as its source text, compressed (~5 KB of bytes, which cost nothing
to pickle), and becomes a module of the worker process the first time one
of its tasks runs there (under a name that holds the source's digest, so
two versions never mix). Sent by value instead, the kernel's functions were
pickled with every task in the client and unpickled in the scheduler and
the worker: ~19 KB of code objects, ~2.5 ms of the client's CPU per task on
a LocalCluster (whose scheduler shares the client's process).
"""


def run_kernel(name, filename, source, *args, **kwargs):
    """Call ``run_submitted(*args, **kwargs)`` of the kernel module ``name``,
    made from ``source`` (its file's text, zlib-compressed; the file being
    ``filename``) if this process does not have it yet."""
    import sys
    import types
    import zlib

    module = sys.modules.get(name)
    if module is None:
        module = types.ModuleType(name)
        module.__file__ = filename
        code = compile(zlib.decompress(source).decode("utf-8"), filename, "exec")
        exec(code, module.__dict__)
        module = sys.modules.setdefault(name, module)   # one copy, whichever thread won
    return module.run_submitted(*args, **kwargs)

"""What runs inside a worker: the batch kernel, a worker process's main loop,
the agent uploaded into a remote connection and the entry a Dask worker
calls.

These modules import only the standard library and cloudpickle (the remote
agent and the kernel travel as source text to hosts that have no imap), so
nothing here may import the rest of the package at module level.
"""

"""The code a remote worker runs, uploaded as source into each connection.

:class:`~imap.backends.remote.RemoteBackend` executes the batch kernel
(:mod:`imap.backends.kernel`) and then this file, as text, in the namespace
of a classic RPyC connection with ``conn.execute(...)``, and calls these
entry points through ``conn.namespace``:

* ``imap_agent_nodelay()`` -> bool — once per connection: turns Nagle's
  algorithm off on the server's socket, so pipelined answers are not delayed.
* ``imap_agent_init(payload)`` — once per connection, only when the IMap has
  an ``initializer``: ``payload`` is the cloudpickle of
  ``(initializer, initargs)``.
* ``imap_agent_run(key, payload, data)`` -> bytes — one call (one network
  round trip) per batch. ``payload`` is the cloudpickle of
  ``(func, args, kwargs)`` of task ``key`` the first time this connection
  sees that task, else None; ``data`` is the pickle of the list of input
  items. The answer is the kernel's (:func:`kernel.answer_batch`): the
  pickle of ``(values, errors, busy, peak, more)``, ``more`` always False
  (a remote batch is answered once).

It imports nothing of ``imap`` when uploaded, so the remote host needs only
Python, rpyc and cloudpickle.
"""

if "answer_batch" not in globals():  # imported as a module, not uploaded after the kernel
    from .kernel import FLUSH_EVERY, answer_batch, load_task, pack_error

_WHERE = "the remote worker"
_funcs = {}             # task key -> (func, args, kwargs) or (None, packed error)
_state = {"init_error": None}


def imap_agent_nodelay():
    """Set TCP_NODELAY on the server's end of this connection; True if done.

    Stock rpyc servers leave Nagle's algorithm on, which delays the answer to
    a pipelined request by up to one delayed-ACK period (about 40 ms). The
    serving connection is found on the call stack of this request.
    """
    import socket
    import sys

    frame = sys._getframe(1)
    while frame is not None:
        owner = frame.f_locals.get("self")
        sock = getattr(getattr(getattr(owner, "_channel", None), "stream", None), "sock", None)
        if isinstance(sock, socket.socket):
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                return True
            except OSError:
                return False
        frame = frame.f_back
    return False


def imap_agent_init(payload):
    """Run the IMap's initializer once in this connection."""
    import pickle

    try:
        initializer, initargs = pickle.loads(payload)
        initializer(*initargs)
        _state["init_error"] = None
    except Exception as exc:
        _state["init_error"] = pack_error(exc)


def imap_agent_run(key, payload, data):
    """Evaluate one batch; return the kernel's pickled answer."""
    key = tuple(key)
    if payload is not None:
        for old in [k for k in _funcs if k[0] != key[0]]:  # an older IMap run
            del _funcs[old]
        _funcs[key] = load_task(payload, _WHERE)
    return answer_batch(_funcs.get(key), _state["init_error"], data, _WHERE,
                        every=FLUSH_EVERY)

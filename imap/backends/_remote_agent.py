"""The code a remote worker runs, uploaded as source into each connection.

:class:`~imap.backends.remote.RemoteBackend` sends the text of this file with
``conn.execute(...)`` into the namespace of a classic RPyC connection and
then calls the two entry points through ``conn.namespace``:

* ``imap_agent_nodelay()`` -> bool — once per connection: turns Nagle's
  algorithm off on the server's socket, so pipelined answers are not delayed.

* ``imap_agent_init(payload)`` — once per connection, only when the IMap has
  an ``initializer``: ``payload`` is the cloudpickle of
  ``(initializer, initargs)``.
* ``imap_agent_run(key, payload, data)`` -> bytes — one call (one network
  round trip) per batch. ``payload`` is the cloudpickle of
  ``(func, args, kwargs)`` of task ``key`` the first time this connection
  sees that task, else None; ``data`` is the pickle of the list of input
  items. The answer is the pickle of ``(values, errors)``: ``errors`` is None
  or a dict position -> packed error ``(exception_pickle_or_None, repr,
  traceback_text)``, the format of :func:`imap.backends._worker.pack_error`;
  a packed error whose first element is the string ``"unsendable"`` means
  "data could not travel" and becomes an :class:`~imap.errors.UnsendableError`.

Self-contained on purpose: it imports nothing of ``imap``, so the remote host
needs only Python, rpyc and cloudpickle (the unpickling of functions sent by
value needs cloudpickle's helpers).
"""

import pickle
import traceback

import cloudpickle  # noqa: F401  (functions pickled by value load through it)

_PROTOCOL = pickle.HIGHEST_PROTOCOL
_funcs = {}             # task key -> (func, args, kwargs) or (None, packed error)
_state = {"init_error": None}


def _tb_text(exc):
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


def _pack_error(exc):
    text = _tb_text(exc)
    data = None
    for dumps in (pickle.dumps, cloudpickle.dumps):
        try:
            candidate = dumps(exc, _PROTOCOL)
            pickle.loads(candidate)  # some exceptions pickle but do not unpickle
            data = candidate
            break
        except Exception:
            pass
    return (data, repr(exc), text)


def _unsendable(message, exc):
    return ("unsendable", f"{message}: {exc!r}", _tb_text(exc))


def _run_items(func, args, kwargs, items):
    if args or kwargs:
        def call(item):
            return func(item, *args, **kwargs)
    else:
        call = func
    values = []
    errors = None
    n = len(items)
    while True:
        try:  # map() at C speed; on an exception the values before it are kept
            values.extend(map(call, items[len(values):] if values else items))
            return values, errors
        except (Exception, SystemExit) as exc:
            if errors is None:
                errors = {}
            errors[len(values)] = _pack_error(exc)
            values.append(None)
            if len(values) == n:
                return values, errors


def _encode(values, errors):
    try:
        return pickle.dumps((values, errors), _PROTOCOL)
    except Exception:
        pass
    errors = dict(errors or {})
    for pos, value in enumerate(values):
        if pos in errors:
            continue
        try:
            pickle.dumps(value, _PROTOCOL)
        except Exception as exc:
            errors[pos] = _unsendable(
                f"the result ({type(value).__name__}) could not be pickled to send it "
                "back from the remote worker", exc)
            values[pos] = None
    return pickle.dumps((values, errors), _PROTOCOL)


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
    try:
        initializer, initargs = pickle.loads(payload)
        initializer(*initargs)
        _state["init_error"] = None
    except Exception as exc:
        _state["init_error"] = _pack_error(exc)


def imap_agent_run(key, payload, data):
    """Evaluate one batch; return the pickled ``(values, errors)``."""
    key = tuple(key)
    if payload is not None:
        for old in [k for k in _funcs if k[0] != key[0]]:  # an older IMap run
            del _funcs[old]
        try:
            _funcs[key] = pickle.loads(payload)
        except Exception as exc:
            _funcs[key] = (None, _unsendable(
                "the function could not be unpickled on the remote worker", exc))
    try:
        items = pickle.loads(data)
    except Exception as exc:
        return pickle.dumps((None, _unsendable(
            "the items could not be unpickled on the remote worker", exc)), _PROTOCOL)
    n = len(items)
    entry = _funcs.get(key)
    failure = _state["init_error"]
    if failure is None and (entry is None or entry[0] is None):
        failure = entry[1] if entry else ("unsendable", "function not received", "")
    if failure is not None:
        return pickle.dumps(([None] * n, {pos: failure for pos in range(n)}), _PROTOCOL)
    values, errors = _run_items(entry[0], entry[1], entry[2], items)
    return _encode(values, errors)

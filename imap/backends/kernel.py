"""The batch kernel: what every kind of worker does with one batch.

One implementation, used everywhere a batch runs:

* thread workers call :func:`run_batch` directly;
* process workers import this module (``_worker.process_main``);
* remote workers receive its *source*: the remote backend executes this file
  in the namespace of each RPyC connection before the agent
  (``_remote_agent.py``), so a remote host needs no copy of ``imap``.

It therefore imports nothing of ``imap`` (and only the standard library and
cloudpickle).

What it does:

* :func:`run_batch` calls ``func(item, *args, **kwargs)`` once per item at C
  speed, keeps the values computed before an exception, and measures the
  time the batch took in the worker (``busy``, seconds): the figure the
  adaptive flow policy and the statistics read.
* :func:`pack_error` turns an exception into what travels between processes:
  ``(exception_pickle_or_None, repr, traceback_text)``. The exception is
  pickled with :mod:`pickle`, else with cloudpickle; ``None`` when neither
  can carry it.
* :func:`unsendable` is the one format for "this could not travel" (an item,
  a function or a result that does not pickle or unpickle):
  ``("unsendable", message, traceback_text)``. The parent turns it, and a
  packed error whose pickle is ``None``, into :class:`imap.UnsendableError`
  (``imap.backends.wire.unpack_error``).
* :func:`encode_results` pickles a batch's answer ``(values, errors, busy)``,
  replacing each result that does not pickle by an unsendable error in its
  place.
"""

import pickle
import time
import traceback

import cloudpickle

PROTOCOL = pickle.HIGHEST_PROTOCOL
UNSENDABLE = "unsendable"


def traceback_text(exc):
    """The formatted traceback of ``exc`` (text travels where frames cannot)."""
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


def pack_error(exc):
    """``exc`` as it travels: ``(pickle or None, repr, traceback text)``."""
    text = traceback_text(exc)
    for dumps in (pickle.dumps, cloudpickle.dumps):
        try:
            data = dumps(exc, PROTOCOL)
            pickle.loads(data)  # some exceptions pickle but do not unpickle
            return (data, repr(exc), text)
        except Exception:
            pass
    return (None, repr(exc), text)


def unsendable(message, exc=None):
    """The packed error of something that could not travel."""
    if exc is None:
        return (UNSENDABLE, message, "")
    return (UNSENDABLE, f"{message}: {exc!r}", traceback_text(exc))


def failed(n, packed):
    """The answer of a batch of ``n`` tasklets that all fail with ``packed``."""
    return [None] * n, dict.fromkeys(range(n), packed)


def run_batch(func, args, kwargs, items, pack=True):
    """Call ``func(item, *args, **kwargs)`` for each item, once each.

    Returns ``(values, errors, busy)``: ``errors`` is None when every call
    returned, else a dict position -> error (packed with :func:`pack_error`
    if ``pack``, else the exception itself); ``busy`` is the time the batch
    took, in seconds.
    """
    start = time.perf_counter()
    if args or kwargs:
        def call(item):
            return func(item, *args, **kwargs)
    else:
        call = func
    values = []
    errors = None
    n = len(items)
    while len(values) < n:
        # map() runs at C speed; when a call raises, the values before it are
        # already in ``values``, so no item is ever run twice.
        try:
            values.extend(map(call, items[len(values):] if values else items))
        except (Exception, SystemExit) as exc:  # SystemExit: a function calling exit()
            if errors is None:
                errors = {}
            errors[len(values)] = pack_error(exc) if pack else exc
            values.append(None)
    return values, errors, time.perf_counter() - start


def encode_results(values, errors, busy, where="the worker"):
    """Pickle a batch's answer ``(values, errors, busy)``.

    A result that cannot be pickled becomes an unsendable error in its place.
    """
    try:
        return pickle.dumps((values, errors, busy), PROTOCOL)
    except Exception:
        pass
    errors = dict(errors or {})
    for pos, value in enumerate(values):
        if pos in errors:
            continue
        try:
            pickle.dumps(value, PROTOCOL)
        except Exception as exc:
            errors[pos] = unsendable(
                f"the result ({type(value).__name__}) could not be pickled to send it "
                f"back from {where}", exc)
            values[pos] = None
    return pickle.dumps((values, errors, busy), PROTOCOL)


def load_task(payload, where="the worker"):
    """Unpickle a task's ``(func, args, kwargs)``; ``(None, error)`` if it fails."""
    try:
        return pickle.loads(payload)
    except Exception as exc:
        return (None, unsendable(f"the function could not be unpickled in {where}", exc))


def answer_batch(entry, init_error, data, where="the worker"):
    """Run one batch as a worker receives it; return the pickled answer.

    ``entry`` is the task's ``(func, args, kwargs)`` (or ``(None, error)``,
    or None if the function never arrived), ``init_error`` the packed error
    of a failed initializer (or None), ``data`` the pickled list of items.
    """
    try:
        items = pickle.loads(data)
    except Exception as exc:
        return pickle.dumps((None, unsendable(
            f"the items could not be unpickled in {where}", exc), 0.0), PROTOCOL)
    failure = init_error
    if failure is None and (entry is None or entry[0] is None):
        failure = entry[1] if entry else unsendable("the function was not received")
    if failure is not None:
        values, errors = failed(len(items), failure)
        return pickle.dumps((values, errors, 0.0), PROTOCOL)
    values, errors, busy = run_batch(entry[0], entry[1], entry[2], items)
    return encode_results(values, errors, busy, where)

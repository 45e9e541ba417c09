"""Code that runs inside a worker: evaluating a batch, and the main loop of a
worker process.

Kept small and free of engine imports so a spawned worker starts fast.

Messages to a worker process are pickled tuples:

* ``("f", key, payload)`` — the function of task ``key``: ``payload`` is the
  cloudpickle of ``(func, args, kwargs)``; sent once per task per worker.
* ``("b", key, batch_id, n, items)`` — a batch of ``n`` tasklets: ``items``
  is the pickle of the list of input items.
* ``("x", key)`` — forget task ``key``.
* ``("q",)`` — quit.

A worker answers every batch, in order, with ``("r", batch_id, values,
errors)``: ``errors`` is None or a dict position -> packed error
``(exception_pickle_or_None, repr, traceback_text)``.
"""

from __future__ import annotations

import pickle
import signal
import traceback
from collections.abc import Callable
from typing import Any

from ..errors import UnsendableError, WorkerTraceback

PROTOCOL = pickle.HIGHEST_PROTOCOL


def run_items(func: Callable, args: tuple, kwargs: dict, items: list) -> tuple[list, Any]:
    """Call ``func(item, *args, **kwargs)`` for each item, once each.

    Returns ``(values, errors)``: ``errors`` is None when every call returned,
    else a dict position -> the exception raised (its traceback attached).
    """
    if args or kwargs:
        def call(item: Any) -> Any:
            return func(item, *args, **kwargs)
    else:
        call = func
    values: list = []
    errors = None
    n = len(items)
    while True:
        # map() runs at C speed; when a call raises, the values before it are
        # already in ``values``, so no item is ever run twice.
        try:
            values.extend(map(call, items[len(values):] if values else items))
            return values, errors
        except (Exception, SystemExit) as exc:  # SystemExit: a function calling exit()
            if errors is None:
                errors = {}
            errors[len(values)] = exc
            values.append(None)
            if len(values) == n:
                return values, errors


def traceback_text(exc: BaseException) -> str:
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


def with_traceback_cause(exc: BaseException, text: str) -> BaseException:
    """Attach the worker-side traceback text as ``__cause__``."""
    exc.__cause__ = WorkerTraceback(text)
    return exc


def pack_error(exc: BaseException) -> tuple:
    """An exception as it travels between processes."""
    text = traceback_text(exc)
    try:
        data = pickle.dumps(exc, PROTOCOL)
        pickle.loads(data)  # some exceptions pickle but do not unpickle
    except Exception:
        data = None
    return (data, repr(exc), text)


def unpack_error(packed: tuple) -> BaseException:
    """Rebuild an exception packed by :func:`pack_error`, traceback as cause."""
    data, text_repr, tb_text = packed
    exc: BaseException
    if data is None:
        exc = UnsendableError(f"{text_repr} (the exception could not be pickled)")
    else:
        try:
            exc = pickle.loads(data)
        except Exception as err:  # pragma: no cover - checked on the worker side
            exc = UnsendableError(f"{text_repr} (the exception could not be unpickled: {err!r})")
    return with_traceback_cause(exc, tb_text)


def _encode_results(batch_id: int, values: list, errors: Any) -> bytes:
    packed = None if errors is None else {p: pack_error(e) for p, e in errors.items()}
    try:
        return pickle.dumps(("r", batch_id, values, packed), PROTOCOL)
    except Exception:
        pass
    # Find the results that do not pickle and report each as its tasklet's error.
    packed = dict(packed or {})
    for pos, value in enumerate(values):
        if pos in packed:
            continue
        try:
            pickle.dumps(value, PROTOCOL)
        except Exception as exc:
            err = UnsendableError(
                f"the result ({type(value).__name__}) could not be pickled to send it "
                f"back from the worker: {exc!r}"
            )
            packed[pos] = pack_error(err)
            values[pos] = None
    return pickle.dumps(("r", batch_id, values, packed), PROTOCOL)


def _failed(n: int, error: tuple) -> tuple[list, dict]:
    return [None] * n, {pos: error for pos in range(n)}


def process_main(task_conn: Any, result_conn: Any, init_payload: bytes | None) -> None:
    """The main loop of a worker process."""
    # Ctrl-C goes to the whole process group: the parent decides what happens.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    init_error = None
    if init_payload is not None:
        try:
            initializer, initargs = pickle.loads(init_payload)
            initializer(*initargs)
        except Exception as exc:
            init_error = pack_error(exc)
    funcs: dict = {}
    recv = task_conn.recv_bytes
    send = result_conn.send_bytes
    while True:
        try:
            msg = pickle.loads(recv())
        except (EOFError, OSError):
            break  # the parent is gone
        tag = msg[0]
        if tag == "b":
            _, key, batch_id, n, data = msg
            entry = funcs.get(key)
            try:
                items = pickle.loads(data)
            except Exception as exc:
                err = UnsendableError(f"the items could not be unpickled in the worker: {exc!r}")
                send(pickle.dumps(("r", batch_id) + _failed(n, pack_error(err)), PROTOCOL))
                continue
            if init_error is not None:
                packed = _failed(len(items), init_error)
                send(pickle.dumps(("r", batch_id) + packed, PROTOCOL))
            elif entry is None or entry[0] is None:
                err = entry[1] if entry else pack_error(UnsendableError("function not received"))
                send(pickle.dumps(("r", batch_id) + _failed(len(items), err), PROTOCOL))
            else:
                values, errors = run_items(entry[0], entry[1], entry[2], items)
                send(_encode_results(batch_id, values, errors))
        elif tag == "f":
            _, key, payload = msg
            try:
                funcs[key] = pickle.loads(payload)
            except Exception as exc:
                err = UnsendableError(f"the function could not be unpickled in the worker: {exc!r}")
                funcs[key] = (None, pack_error(err))
        elif tag == "x":
            funcs.pop(msg[1], None)
        else:  # "q"
            break
    for conn in (task_conn, result_conn):
        try:
            conn.close()
        except OSError:  # pragma: no cover
            pass

"""The batch kernel: what every kind of worker does with one batch.

One implementation, used everywhere a batch runs:

* thread workers call :func:`run_batch` directly;
* process workers import this module (:mod:`imap.worker.process_entry`);
* remote workers receive its *source*: the remote backend executes this file
  in the namespace of each RPyC connection before the agent
  (:mod:`imap.worker.agent_link`, then :mod:`imap.worker.remote_agent`), so a
  remote host needs no copy of ``imap``; Dask workers install it from source.

It therefore imports nothing of ``imap`` (only the standard library and
cloudpickle), and what it sends back is plain builtins: a class of its own
would pickle by reference and not unpickle where imap is missing.

What it does:

* :func:`run_batch` calls ``func(item, *args, **kwargs)`` once per item at C
  speed, keeps the values computed before an exception, and measures the
  time the batch took in the worker (``busy``, seconds; ``peak``: the
  longest tasklet), the figures the flow policy and the statistics read.
  Given a ``flush`` callback it hands over the values computed so far every
  ``every`` seconds, so that a worker that dies mid-batch loses only what it
  computed since: a process worker sends them as *partial answers*.
* :func:`answer_batch` runs one batch as a worker receives it and returns
  its pickled reply; :func:`run_submitted` runs batches as an executor's
  task and returns their replies in one :data:`SUBMITTED` record.
* :func:`unmet_dependency` checks a function's functional dependency
  (``imap.require`` / ``imap.depend``: plain tuples in the function's
  attribute :data:`DEPENDS`) once per worker process; a batch whose
  dependency is unmet is refused whole.
* :func:`record_data`, :func:`log_collector` and :func:`collect_logs` turn
  the ``logging`` records a batch emits into dicts that travel to the parent.
* :func:`dumps_frames` pickles with the large buffers beside the stream,
  as frames, where the transport carries frames (Dask, a remote connection).

The records it sends (see "What travels back" below) are tuples with a tag
first, each built by one constructor here, their fields named in order by
:data:`REPLY_FIELDS`, :data:`ERROR_FIELDS`, :data:`FRAMES_FIELDS` and
:data:`SUBMITTED_FIELDS`. The
parent reads them as NamedTuples of the same fields
(:mod:`imap.transport.records`).
"""

import logging
import pickle
import threading
import time
import traceback

import cloudpickle

PROTOCOL = pickle.HIGHEST_PROTOCOL   # of every pickle the kernel makes
DEPENDS = "__imap_depends__"   # a function's dependency marks (imap.depends)
FLUSH_EVERY = 0.25  # seconds between partial answers of a long batch
# A buffer of at least this many bytes (a numpy array's data, a bytes...)
# travels out of band where the transport carries frames (Dask, a remote
# connection): beside the pickle stream, never copied into it. (imap.transport.shm uses
# the same figure.)
FRAME_BYTES = 64 * 1024

# -- What travels back ------------------------------------------------------------------
# A worker's reply to a batch is the pickle of one of these tuples, its tag first
# and then the fields named here, in this order:
ANSWER = "answer"     # results (``more``: a partial answer, more answers follow)
FAILED = "failed"     # every tasklet of the batch fails with this one error
OUT_OF_BAND = "oob"   # an answer pickled apart, its large buffers in shared memory
REPLY_FIELDS = {
    ANSWER: ("values", "errors", "busy", "peak", "more"),
    FAILED: ("error",),
    OUT_OF_BAND: ("stream", "refs"),   # the answer's pickle, where its buffers are
}
# ``values`` are aligned with the batch's items (None where an error is);
# ``errors`` is None or {position: error}. An error is a tuple of ERROR_FIELDS,
# its kind first; what ``text`` and ``detail`` hold depends on the kind:
ERROR = "error"              # the function raised: its repr; its pickle (None: it has none)
UNSENDABLE = "unsendable"    # something could not travel: what, and why; None
INIT_FAILED = "init-failed"  # the initializer raised: its name; its error (an ERROR)
UNMET = "unmet-dependency"   # the function's dependency is unmet: why; the worker (or None)
ERROR_FIELDS = ("kind", "text", "traceback", "detail")
# A payload (a batch's items, a reply) is a pickle stream (bytes) or a frames
# record: the stream and its large buffers beside it, as frames (a dict: a
# transport such as Dask's sends what a dict holds as frames of its own).
FRAMES = "frames"
FRAMES_FIELDS = ("stream", "frames")
# An executor's task (:func:`run_submitted`) returns one record for the
# batches it ran: their replies in order, the worker that ran them, and the
# pickled list of log records they emitted (None: none).
SUBMITTED = "submitted"
SUBMITTED_FIELDS = ("replies", "worker", "logs")


def answer_reply(values, errors, busy, peak, more=False):
    """The reply that carries a batch's results (:data:`ANSWER`)."""
    return (ANSWER, values, errors, busy, peak, more)


def failed_reply(error):
    """The reply of a batch whose every tasklet fails with ``error`` (:data:`FAILED`)."""
    return (FAILED, error)


def out_of_band_reply(stream, refs):
    """The reply of an answer pickled as ``stream`` with its large buffers in
    the shared memory ``refs`` names (:data:`OUT_OF_BAND`)."""
    return (OUT_OF_BAND, stream, refs)


def error_record(kind, text, tb="", detail=None):
    """An error as it travels: a tuple of :data:`ERROR_FIELDS`."""
    return (kind, text, tb, detail)


def frames_record(stream, frames):
    """A payload with its large buffers apart: ``stream`` and ``frames``."""
    return {"tag": FRAMES, "stream": stream, "frames": frames}


def submitted_record(replies, worker, logs):
    """What an executor's task returns (:data:`SUBMITTED`): the ``replies``
    of its batches, in order, the ``worker`` that ran them and their
    ``logs``."""
    return (SUBMITTED, replies, worker, logs)


def payload_parts(data):
    """``(stream, frames)`` of a payload; ``frames`` is None for a pickle
    stream alone."""
    if isinstance(data, (bytes, bytearray)):
        return data, None
    tag = data.get("tag") if type(data) is dict else None
    if tag != FRAMES:
        raise ValueError(f"a payload is a pickle stream or a frames record (tag {FRAMES!r}), "
                         f"not a {type(data).__name__} tagged {tag!r}")
    return data["stream"], data["frames"]


def traceback_text(exc):
    """The formatted traceback of ``exc`` (text travels where frames cannot)."""
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


def pack_error(exc):
    """``exc`` as it travels: an :data:`ERROR` record whose detail is the
    exception's pickle, or None when neither pickle nor cloudpickle can
    carry it (or it does not unpickle)."""
    text = traceback_text(exc)
    for dumps in (pickle.dumps, cloudpickle.dumps):
        try:
            data = dumps(exc, PROTOCOL)
            pickle.loads(data)  # some exceptions pickle but do not unpickle
            return error_record(ERROR, repr(exc), text, data)
        except Exception:
            pass
    return error_record(ERROR, repr(exc), text)


def pack_init_error(exc, initializer=None):
    """A failed initializer's error as it travels (:data:`INIT_FAILED`); the
    parent raises it as a ``WorkerInitError`` for each tasklet."""
    if initializer is None:
        name = "(which could not be unpickled there)"
    else:
        name = getattr(initializer, "__qualname__", None) or repr(initializer)
    return error_record(INIT_FAILED, name, "", pack_error(exc))


def initialize(payload):
    """Run the initializer in ``payload`` (the cloudpickle of ``(initializer,
    initargs)``), the one way every worker does (a process, a remote
    connection, an executor's worker); return its packed error
    (:func:`pack_init_error`), or None if it ran."""
    initializer = None
    try:
        initializer, initargs = pickle.loads(payload)
        initializer(*initargs)
    except Exception as exc:
        return pack_init_error(exc, initializer)
    return None


_checked = {}   # dependency mark token -> None (met here) or the reason it is not


def _check_one(spec):
    """None if the dependency mark ``spec`` is met in this process, else why not."""
    kind = spec[1]
    if kind == "require":
        import importlib
        for name in spec[3]:
            try:
                importlib.import_module(name)
            except BaseException as exc:   # noqa: BLE001 - any failure is "unmet"
                return f"module {name!r} does not import ({type(exc).__name__}: {exc})"
        return None
    if kind == "depend":
        predicate, args, kwargs = spec[3], spec[4], spec[5]
        name, _, rest = spec[2][len("depend("):-1].partition(", ")
        call = f"{name}({rest})"
        try:
            if predicate(*args, **kwargs):
                return None
        except BaseException as exc:   # noqa: BLE001 - a predicate that fails is false
            return f"{call} raised {type(exc).__name__}: {exc}"
        return f"{call} is false"
    return f"a dependency of an unknown kind {kind!r} (a newer imap made it)"


def _provide(func, names):
    """Make the modules ``names`` (imported already) globals of ``func``
    (and of the functions it composes) where it has no global of that name."""
    import sys
    targets = [func] + list(getattr(func, "__imap_functions__", ()))
    for target in targets:
        target = getattr(target, "__wrapped__", target)
        namespace = getattr(target, "__globals__", None)
        if namespace is None:
            continue
        for name in names:
            top = name.split(".")[0]
            if top not in namespace and top in sys.modules:
                namespace[top] = sys.modules[top]


def unmet_dependency(func, worker=None):
    """None if ``func`` has no dependency mark or each is met in this
    process (checked once per mark and process, or per ``worker`` when
    several share a process, as Dask workers may), else the reason it is not."""
    specs = getattr(func, DEPENDS, None)
    if not specs:
        return None
    for spec in specs:
        token = (spec[0], worker)
        if token in _checked:
            reason = _checked[token]
        else:
            reason = _checked[token] = _check_one(spec)
        if reason is not None:
            return reason
        if spec[1] == "require":
            _provide(func, spec[3])
    return None


def record_data(record):
    """A log record as it travels: its attributes, the message formatted
    (arguments may not pickle) and the traceback as text."""
    data = dict(record.__dict__)
    data["msg"] = record.getMessage()
    data["args"] = None
    if record.exc_info:
        data["exc_text"] = logging.Formatter().formatException(record.exc_info)
    data["exc_info"] = None
    for key, value in data.items():
        if not isinstance(value, (str, int, float, type(None))):
            try:
                pickle.dumps(value, PROTOCOL)
            except Exception:   # given with extra=, say
                data[key] = repr(value)
    return data


def log_collector(level):
    """The handler that collects this process's log records for batches
    that ask for them (see :func:`collect_logs`), installed on the root
    logger once per process; the root logger's level is lowered to
    ``level`` if it is higher.

    One handler serves the whole process (a threaded server, or an
    executor's worker, runs several batches at once): it keeps a record
    only while its thread runs a batch that collects, in that batch's list.
    """
    root = logging.getLogger()
    collector = next((h for h in root.handlers if getattr(h, "imap_agent", False)), None)
    if collector is None:
        class Collector(logging.Handler):
            imap_agent = True

            def __init__(self):
                super().__init__()
                self.local = threading.local()

            def emit(self, record):
                records = getattr(self.local, "records", None)
                if records is not None:
                    try:
                        records.append(record_data(record))
                    except Exception:
                        self.handleError(record)

        collector = Collector()
        root.addHandler(collector)
    if root.getEffectiveLevel() > level:
        root.setLevel(level)
    return collector


def collect_logs(collector, run):
    """``run()``, and the log records (:func:`record_data`) it emitted in
    this thread: a list, empty if ``collector`` is None."""
    if collector is None:
        run()
        return []
    collector.local.records = records = []
    try:
        run()
    finally:
        collector.local.records = None
    return records


def unsendable(message, exc=None):
    """The error of something that could not travel (:data:`UNSENDABLE`)."""
    if exc is None:
        return error_record(UNSENDABLE, message)
    return error_record(UNSENDABLE, f"{message}: {exc!r}", traceback_text(exc))


def unmet(reason, worker=None):
    """The error of a tasklet whose function's dependency is unmet here
    (:data:`UNMET`): the parent reads it as an ``imap.UnmetDependency`` of
    the whole task, which ``worker`` refuses."""
    return error_record(UNMET, reason, "", worker)


def failed(n, packed):
    """``(values, errors)`` of a batch of ``n`` tasklets that all fail with ``packed``."""
    return [None] * n, dict.fromkeys(range(n), packed)


def run_batch(func, args, kwargs, items, pack=True, flush=None, every=None):
    """Call ``func(item, *args, **kwargs)`` for each item, once each.

    Returns ``(values, errors, busy, peak)``: ``errors`` is None when every
    call returned, else a dict position -> error (packed with
    :func:`pack_error` if ``pack``, else the exception itself); ``busy`` is
    the time the batch took, in seconds; ``peak`` the longest time of one
    tasklet, as far as it was measured (see below).

    Without ``every``, the items run in one go and ``peak`` is the mean.
    With ``every`` (seconds), they run in runs of growing length, each timed:
    a run stays one item long while items take more than ``every / 8``, so
    ``peak`` is exact for long tasklets and a run's mean for short ones.
    With ``flush`` too, once ``every`` seconds have passed since the last
    flush (``every`` 0: after every item), ``flush(values, errors, busy,
    peak)`` receives what was computed since, positions counted from
    there; the return value then holds only the items after the last flush.
    """
    mark = time.perf_counter()
    if args or kwargs:
        def call(item):
            return func(item, *args, **kwargs)
    else:
        call = func
    values = []
    errors = None
    n = len(items)
    done = 0            # items handed to flush() already
    step = n if every is None else 1
    peak = 0.0
    while done + len(values) < n:
        lo = done + len(values)
        hi = min(n, lo + step)
        began = time.perf_counter() if step < n else mark
        # map() runs at C speed; when a call raises, the values before it are
        # already in ``values``, so no item is ever run twice.
        try:
            values.extend(map(call, items if hi - lo == n else items[lo:hi]))
        except (Exception, SystemExit) as exc:  # SystemExit: a function calling exit()
            if errors is None:
                errors = {}
            errors[len(values)] = pack_error(exc) if pack else exc
            values.append(None)
        now = time.perf_counter()
        ran = done + len(values) - lo
        if (now - began) / ran > peak:
            peak = (now - began) / ran
        if every is None or done + len(values) == n:
            continue
        if flush is not None and now - mark >= every:
            flush(values, errors, now - mark, peak)
            done += len(values)
            values = []
            errors = None
            mark = now
            peak = 0.0
        elif now - began < every / 8:
            step *= 2  # quick so far: fewer, longer runs of map()
    return values, errors, time.perf_counter() - mark, peak


def dumps_frames(obj, threshold=FRAME_BYTES, by_value=False):
    """Pickle ``obj`` (protocol 5) with its buffers of ``threshold`` bytes
    or more out of band: the pickle stream alone if it has none, else a
    frames record (:func:`frames_record`; memoryviews), what
    :func:`loads_frames` reads. The frames are views of ``obj``'s own
    memory (no copy): a transport that sends them as frames of its own
    (Dask's does) never copies them into a pickle stream. ``by_value``:
    with cloudpickle (classes of the user's modules travel by value)."""
    frames = []

    def keep_in_band(buffer):
        try:
            raw = buffer.raw()
        except BufferError:   # not contiguous: pickle copies it in band
            return True
        if raw.nbytes < threshold:
            return True
        frames.append(raw)
        return False
    try:
        if by_value:
            raise pickle.PicklingError("by value")
        stream = pickle.dumps(obj, PROTOCOL, buffer_callback=keep_in_band)
    except Exception:
        frames.clear()
        stream = cloudpickle.dumps(obj, PROTOCOL, buffer_callback=keep_in_band)
    return frames_record(stream, frames) if frames else stream


def loads_frames(data, buffers=None):
    """The object that :func:`dumps_frames` made ``data`` of (a payload;
    ``buffers``: those of a pickle stream alone, from elsewhere). Arrays that
    came out of band as frames are read-only views of them (copy one to edit
    it in place)."""
    stream, frames = payload_parts(data)
    if frames is not None:
        buffers = [memoryview(f).toreadonly() for f in frames]
    return pickle.loads(stream, buffers=buffers)


def frames_size(data):
    """Bytes of the payload ``data``: its stream and frames."""
    stream, frames = payload_parts(data)
    return len(stream) + sum(memoryview(f).nbytes for f in frames or ())


def _returned_exceptions(values, errors, where):
    """``(values, errors)`` with an exception returned as a value that would
    not unpickle in the parent turned into an unsendable error."""
    for pos, value in enumerate(values):
        if isinstance(value, BaseException) and not (errors and pos in errors):
            try:
                pickle.loads(pickle.dumps(value, PROTOCOL))
            except Exception as exc:
                errors = dict(errors or {})
                errors[pos] = unsendable(
                    f"the result ({type(value).__name__}, an exception returned as a value) "
                    f"could not be pickled and unpickled to send it back from {where}; give "
                    f"its class an __init__ that accepts its args, or define __reduce__",
                    exc)
                values = list(values)
                values[pos] = None
    return values, errors


def encode_results(values, errors, busy, peak, where="the worker", more=False, oob=None):
    """Pickle a batch's answer (:func:`answer_reply`), with its large buffers
    out of band by ``oob(answer)`` if given and it can.

    A result that cannot be pickled becomes an unsendable error in its place,
    and so does an exception returned as a result that pickles but does not
    unpickle (a subclass whose ``__init__`` takes other arguments than its
    ``args``: it would fail in the parent, for the whole batch).
    """
    values, errors = _returned_exceptions(values, errors, where)
    answer = answer_reply(values, errors, busy, peak, more)
    if oob is not None:   # large buffers out of band (shared memory, or frames)
        try:
            return oob(answer)
        except Exception:
            pass
    try:
        return pickle.dumps(answer, PROTOCOL)
    except Exception:
        pass
    try:   # classes that came by value (from the user's modules) go back so
        return cloudpickle.dumps(answer, PROTOCOL)
    except Exception:
        pass
    errors = dict(errors or {})
    values = list(values)
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
    return pickle.dumps(answer_reply(values, errors, busy, peak, more), PROTOCOL)


def load_task(payload, where="the worker"):
    """Unpickle a task's ``(func, args, kwargs)``; ``(None, error)`` if it fails."""
    try:
        return pickle.loads(payload)
    except Exception as exc:
        return (None, unsendable(f"the function could not be unpickled in {where}"
                                 + _missing(exc), exc))


def _missing(exc):
    """What to do about a module the worker cannot import (else "")."""
    if not isinstance(exc, ModuleNotFoundError) or not exc.name:
        return ""
    return (f" (module {exc.name!r} is not installed there: it is sent by reference, "
            f"as an installed package or a compiled module is; install it on that host)")


def answer_batch(entry, init_error, data, where="the worker", send=None, every=None,
                 worker=None, buffers=None, oob=None):
    """Run one batch as a worker receives it; return its pickled reply.

    ``entry`` is the task's ``(func, args, kwargs)`` (or ``(None, error)``,
    or None if the function never arrived), ``init_error`` the packed error
    of a failed initializer (or None), ``data`` the payload of the list of
    items (:func:`payload_parts`). ``every``: see :func:`run_batch`; with
    ``send`` too, partial answers go out through ``send`` while the batch
    runs. If the function's dependency is unmet here, the batch is refused
    whole (a :func:`failed_reply` of an :func:`unmet` error).
    ``buffers``: the out-of-band buffers of ``data``; ``oob(answer)``: pickle
    an answer with its large buffers out of band (see :mod:`imap.transport.shm`).
    """
    try:
        items = loads_frames(data, buffers)
    except Exception as exc:
        return pickle.dumps(failed_reply(unsendable(
            f"the items could not be unpickled in {where}" + _missing(exc), exc)), PROTOCOL)
    failure = init_error
    if failure is None and (entry is None or entry[0] is None):
        failure = entry[1] if entry else unsendable("the function was not received")
    if failure is None:
        try:
            reason = unmet_dependency(entry[0], worker)
        except Exception as exc:   # noqa: BLE001 - a mark that is not as made
            reason = f"its dependency could not be checked here ({exc!r})"
        if reason is not None:
            failure = unmet(reason, worker)
    if failure is not None:
        return pickle.dumps(failed_reply(failure), PROTOCOL)
    flush = None
    if send is not None:
        def flush(values, errors, busy, peak):
            send(encode_results(values, errors, busy, peak, where, more=True, oob=oob))
        if every == 0:   # tasklet by tasklet: say first that the batch began here
            send(pickle.dumps(answer_reply([], None, 0.0, 0.0, True), PROTOCOL))
    values, errors, busy, peak = run_batch(entry[0], entry[1], entry[2], items,
                                           flush=flush, every=every)
    return encode_results(values, errors, busy, peak, where, oob=oob)


def run_submitted(payload, init, parts, where="the executor's worker", log_level=None,
                  frames=False):
    """The batch kernel as an executor runs it (``concurrent.futures`` or
    Dask): one call for one or more batches of a task, in whichever worker
    the executor picks.

    ``payload`` is the cloudpickle of the task's ``(func, args, kwargs)``,
    ``init`` None or ``(token, cloudpickle of (initializer, initargs))``:
    the initializer runs once per worker process (per ``token``: one IMap
    run), before its first batch. ``parts`` is a list of the payloads of
    the batches' items (each a pickle stream or a frames record), run one
    after another. Returns a :func:`submitted_record`: each batch's pickled
    reply, its large buffers as frames if ``frames`` (the executor carries
    them: Dask); the worker's name; with a ``log_level``, the pickle of the
    list of records of that level or above that the initializer or the
    batches logged (None if there were none, or no ``log_level``).
    """
    import os
    import sys

    state = sys.modules.get("_imap_executor_state")
    if state is None:  # one per worker process, whatever copy of this code runs
        import types
        state = types.ModuleType("_imap_executor_state")
        state.lock = threading.Lock()
        state.inits = {}
        sys.modules.setdefault("_imap_executor_state", state)
        state = sys.modules["_imap_executor_state"]
    collector = None if log_level is None else log_collector(log_level)
    init_error = None
    records = []
    if init is not None:
        token, init_payload = init
        with state.lock:
            if token not in state.inits:
                def run_init():
                    state.inits[token] = initialize(init_payload)
                records += collect_logs(collector, run_init)
            init_error = state.inits[token]
    entry = load_task(payload, where)
    replies = []
    distributed = sys.modules.get("distributed")
    try:
        name = f"dask {distributed.get_worker().address}"
    except Exception:   # not a Dask worker
        name = f"process {os.getpid()}"

    def run():
        for part in parts:
            replies.append(answer_batch(entry, init_error, part, where, every=FLUSH_EVERY,
                                        worker=name, oob=dumps_frames if frames else None))
    records += collect_logs(collector, run)
    return submitted_record(replies, name, pickle.dumps(records, PROTOCOL) if records else None)

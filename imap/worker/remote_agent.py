"""The code a remote worker runs, uploaded as source into each connection.

:class:`~imap.backends.remote.RemoteBackend` executes the batch kernel
(:mod:`imap.worker.kernel`) and then this file, as text, in the namespace
of a classic RPyC connection with ``conn.execute(...)``, and calls these
entry points through ``conn.namespace``:

* ``imap_agent_nodelay(tune)`` -> bool — once per connection: turns Nagle's
  algorithm off on the server's socket, so pipelined answers are not delayed,
  and, with ``tune``, has its stream send large answers without copying them
  per chunk (see "rpyc's transport, tuned" below).
* ``imap_agent_compress(on)`` -> bool — once per connection: whether the
  server compresses its answers (rpyc's zlib framing; off by default).
* ``imap_agent_attach()`` -> bool — once per connection, after the two
  above: whether the connection carries *attached* buffers (see
  :func:`write_attached`); if so, items may come and answers go with their
  large buffers attached.
* ``imap_agent_init(payload)`` -> logs or None — once per connection, only
  when the IMap has an ``initializer``: ``payload`` is the cloudpickle of
  ``(initializer, initargs)``.
* ``imap_agent_heartbeat(beat, interval)`` — once per connection: a thread
  calls the client's ``beat`` every ``interval`` seconds, so a busy
  connection that falls silent (a stopped host, a dead link) is noticed;
  under ``imap-server`` it ends the connection's process once the
  connection is closed.
* ``imap_agent_logs(level)`` — once per connection, unless the IMap has
  ``worker_logs=False``: ``logging`` records of ``level`` and above that the
  batches of this connection emit (in the thread that runs them) travel back
  with their answers.
* ``imap_agent_start(deliver)`` — once per connection: starts the thread
  that runs the batches submitted, in order, and sends each answer back as a
  one-way call ``deliver(ticket, answer, logs)``.
* ``imap_agent_submit(ticket, key, payload, data)`` — one asynchronous call
  per batch (batches travel while others run). ``payload`` is the cloudpickle
  of ``(func, args, kwargs)`` of task ``key`` the first time this connection
  sees that task, else None (the function is installed at once, so taking
  the batch back does not lose it); ``data`` is the pickle of the list of
  input items, or ``("frames", stream, count)``: the pickle stream whose
  ``count`` large buffers came attached (:func:`kernel.dumps_frames`); an
  answer comes back either way. The answer is the kernel's (:func:`kernel.answer_batch`):
  the pickle of ``(values, errors, busy, peak, more)``, ``more`` always
  False (a remote batch is answered once). ``logs``, when there are any, is
  the pickle of a list of log records (:func:`kernel.record_data`).
* ``imap_agent_revoke(ticket)`` -> bool — takes a submitted batch back if
  it has not started (late binding: the client runs it elsewhere).

It imports nothing of ``imap`` when uploaded, so the remote host needs only
Python, rpyc and cloudpickle.
"""

if "answer_batch" not in globals():  # imported as a module, not uploaded after the kernel
    from .kernel import (
        FLUSH_EVERY,
        PROTOCOL,
        answer_batch,
        collect_logs,
        dumps_frames,
        initialize,
        load_task,
        log_collector,
    )

_WHERE = "the remote worker"
_funcs = {}             # task key -> (func, args, kwargs) or (None, packed error)
_state = {"init_error": None, "logs": None, "conn": None}   # conn: if it carries attachments


def _new_pending():
    import collections
    import threading

    return {"queue": collections.deque(), "cv": threading.Condition()}


_pending = _new_pending()   # batches submitted, not yet started: (ticket, key, data)


def _serving_connection():
    """The rpyc connection serving the current request, found on the call stack."""
    import sys

    frame = sys._getframe(2)
    while frame is not None:
        conn = frame.f_locals.get("self")
        channel = getattr(conn, "_channel", None)
        if channel is not None and hasattr(channel, "compress"):
            return conn
        frame = frame.f_back
    return None


def _serving_channel():
    """The rpyc channel serving the current request."""
    conn = _serving_connection()
    return None if conn is None else conn._channel


# -- attached buffers ------------------------------------------------------------------
# A large buffer of a batch's items or of an answer (a numpy array's data)
# crosses the connection as an *attached* frame of its own, written from the
# object's memory and read into a buffer of its size: no pickle holds it, on
# either end. An attached frame has rpyc's frame header with a flag rpyc
# never writes (ATTACHED, where rpyc writes 0 or 1 for "compressed"); it
# precedes the message it belongs to, which names how many it takes:
# ``("frames", stream, count)`` in place of a pickle. Only the tuned
# channels below read and write them, on connections whose two ends are
# tuned (``imap_agent_attach``). Each end has one thread that sends
# attachments (the client's driver, the agent's runner) and one that reads
# the connection and handles its messages (so the frames a message takes
# are the first ones that thread read and has not handed out).

ATTACHED = 2


def _new_local():
    import threading

    return threading.local()


_attached = _new_local()   # .frames: what this thread read, not yet handed out


def _attached_inbox():
    """The attached frames this thread read and has not handed out, oldest first."""
    inbox = getattr(_attached, "frames", None)
    if inbox is None:
        inbox = _attached.frames = []
    return inbox


def take_attached(count):
    """The ``count`` attached frames read before the current message."""
    inbox = _attached_inbox()
    if len(inbox) < count:
        raise ValueError(f"a message takes {count} attached buffers; {len(inbox)} came")
    frames = inbox[:count]
    del inbox[:count]
    return frames


def with_attached(data):
    """``data`` as the kernel reads it: a ``("frames", stream, count)``
    message becomes ``{"stream": stream, "frames": [...]}``."""
    if type(data) is tuple and len(data) == 3 and data[0] == "frames":
        return {"stream": data[1], "frames": take_attached(data[2])}
    return data


def write_attached(conn, frames):
    """Write ``frames`` (buffers) on ``conn`` as attached frames, for the
    message its caller sends next. Under rpyc's send lock: no other thread's
    message comes between the bytes of a frame (one that came meanwhile is
    sent by the caller's own message, rpyc's send queue)."""
    channel = conn._channel
    stream = channel.stream
    with conn._sendlock:
        for frame in frames:
            view = memoryview(frame).cast("B")
            stream.write(channel.FRAME_HEADER.pack(view.nbytes, ATTACHED))
            stream.write(view)


def _read_into(stream, view):
    """Fill ``view`` from the socket of rpyc ``stream`` (no copy but the kernel's)."""
    while view:
        try:
            n = stream.sock.recv_into(view)
        except TimeoutError:   # a socket timeout (rpyc's read goes on likewise)
            continue
        except OSError as exc:
            stream.close()
            raise EOFError(exc) from exc
        if not n:
            stream.close()
            raise EOFError("connection closed by peer")
        view = view[n:]


def send_frame(self, data):
    """``write`` of an rpyc socket stream that sends a large frame in linear time.

    rpyc's own cuts what is left of the frame after each ``send`` into a new
    bytes object: a 4 MiB answer is copied some 60 times over, which bounds
    arrays to about 100 MiB/s. Here the chunks are views of the frame.
    """
    chunk = self.MAX_IO_CHUNK
    view = memoryview(data)
    try:
        while view:
            view = view[self.sock.send(view[:chunk]):]
    except OSError as exc:
        self.close()
        raise EOFError(exc) from exc


def recv_frame(self):
    """``recv`` of an rpyc channel that does not copy a large frame to drop its end.

    rpyc reads a frame and its one-byte end marker together and slices the
    marker off: a copy of the whole frame. Here a large frame and its marker
    are read apart (a small one as rpyc does: one read). Attached frames
    before it are kept for the message (:func:`take_attached`).
    """
    while True:
        header = self.stream.read(self.FRAME_HEADER.size)
        length, compressed = self.FRAME_HEADER.unpack(header)
        if compressed != ATTACHED:
            break
        buffer = bytearray(length)
        _read_into(self.stream, memoryview(buffer))
        _attached_inbox().append(buffer)
    end = len(self.FLUSHER)
    if length < self.stream.MAX_IO_CHUNK:
        data = self.stream.read(length + end)[:-end]
    else:
        data = self.stream.read(length)
        self.stream.read(end)
    if compressed:
        import zlib

        data = zlib.decompress(data)
    return data


def send_frame_whole(self, data):
    """``send`` of an rpyc channel that writes a large frame without slicing it."""
    if self.compress and len(data) > self.COMPRESSION_THRESHOLD:
        import zlib

        data, compressed = zlib.compress(data, self.COMPRESSION_LEVEL), 1
    else:
        compressed = 0
    header = self.FRAME_HEADER.pack(len(data), compressed)
    if len(data) < self.stream.MAX_IO_CHUNK:
        self.stream.write(header + data + self.FLUSHER)
    else:
        self.stream.write(header)
        self.stream.write(data)
        self.stream.write(self.FLUSHER)


# -- rpyc's transport, tuned ------------------------------------------------------------
# The functions above replace methods of rpyc's SocketStream and Channel and
# read their class attributes (MAX_IO_CHUNK, FRAME_HEADER, FLUSHER,
# COMPRESSION_THRESHOLD, COMPRESSION_LEVEL) and a connection's ``_channel``
# and ``_sendlock``: internals, not rpyc's API. The tuning is tested with the
# rpyc versions setup.cfg allows; at connect time each end checks that what
# it relies on is there, in the shape expected (:func:`rpyc_mismatch`), and
# otherwise leaves rpyc's own methods in place (slower for large frames,
# correct), saying so once in the "imap" logger. Setting the environment
# variable TUNING_ENV to "off" makes a client use rpyc's own methods at both
# ends of its connections (and a server at its end of every connection).

TUNING_ENV = "IMAP_RPYC_TUNING"
_OFF = ("0", "off", "false", "no")
_FRAME_FORMAT = "!LB"   # rpyc's frame header: length, then the "compressed" flag
_said = set()   # fallback reasons logged already (once each per process)


def tuning_wanted():
    """False if the environment turns the transport tuning off (TUNING_ENV)."""
    import os

    return os.environ.get(TUNING_ENV, "").strip().lower() not in _OFF


def _fall_back(reason, level):
    """Say once per process why this end uses rpyc's own framing."""
    if reason in _said:
        return
    _said.add(reason)
    import logging

    logging.getLogger("imap").log(
        level, "rpyc transport: %s; using rpyc's own stream and channel methods "
               "(correct, slower for large frames)", reason)


def rpyc_mismatch(stream, channel=None):
    """Why the tuning cannot apply to rpyc ``stream`` (and ``channel``):
    an internal it relies on is missing or not of the shape expected; None
    if all are as expected."""
    import struct

    chunk = getattr(type(stream), "MAX_IO_CHUNK", None)
    if type(chunk) is not int or chunk <= 0:
        return f"the stream's MAX_IO_CHUNK is {chunk!r}, not a positive int"
    sock = getattr(stream, "sock", None)
    for name in ("send", "recv_into"):
        if not callable(getattr(sock, name, None)):
            return f"the stream's sock has no {name}()"
    for name in ("read", "write", "close"):
        if not callable(getattr(stream, name, None)):
            return f"the stream has no {name}()"
    if channel is None:
        return None
    if getattr(channel, "stream", None) is not stream:
        return "the channel's stream attribute is not its stream"
    if not hasattr(channel, "compress"):
        return "the channel has no compress attribute"
    for name in ("recv", "send"):
        if not callable(getattr(channel, name, None)):
            return f"the channel has no {name}()"
    header = getattr(type(channel), "FRAME_HEADER", None)
    if not isinstance(header, struct.Struct) or header.format != _FRAME_FORMAT:
        shape = getattr(header, "format", header)
        return f"the channel's FRAME_HEADER is {shape!r}, not a struct of {_FRAME_FORMAT!r}"
    flusher = getattr(type(channel), "FLUSHER", None)
    if type(flusher) is not bytes or not flusher:
        return f"the channel's FLUSHER is {flusher!r}, not non-empty bytes"
    for name in ("COMPRESSION_THRESHOLD", "COMPRESSION_LEVEL"):
        if type(getattr(type(channel), name, None)) is not int:
            return f"the channel's {name} is not an int"
    return None


def attach_shape(conn):
    """Whether rpyc connection ``conn`` can carry attached frames: its
    channel is tuned (it reads them), compresses nothing, and the
    connection has the send lock :func:`write_attached` takes."""
    channel = getattr(conn, "_channel", None)
    lock = getattr(conn, "_sendlock", None)
    return (channel is not None and getattr(type(channel), "recv", None) is recv_frame
            and not getattr(channel, "compress", True)
            and callable(getattr(lock, "__enter__", None)))


_linear = {}   # rpyc class -> its subclass with the methods above


def _tuned(obj, base, methods):
    """Give ``obj`` (an instance of ``base`` exactly) the linear-time ``methods``."""
    cls = type(obj)
    if all(getattr(cls, name, None) is method for name, method in methods.items()):
        return True
    if not isinstance(obj, base) or any(getattr(cls, name, None) is not getattr(base, name)
                                        for name in methods):
        return False   # of another kind: left as it is
    if cls not in _linear:
        _linear[cls] = type(cls.__name__, (cls,), {"__slots__": (), **methods})
    try:
        obj.__class__ = _linear[cls]
    except TypeError as exc:   # a layout the subclass cannot take over
        _fall_back(f"{cls.__name__} cannot be tuned ({exc})", 20)
        return False
    return True


def send_linear(stream, channel=None, tune=True):
    """Make this connection's rpyc stream (and channel) move large frames
    in linear time (:func:`send_frame`, :func:`recv_frame`, :func:`send_frame_whole`).

    Nothing is changed, and False returned, when ``tune`` is false, when
    the environment turns the tuning off (TUNING_ENV), or when rpyc's
    internals are not as the tuning expects (:func:`rpyc_mismatch`): the
    connection then uses rpyc's own methods. True if the stream is tuned.
    """
    from rpyc.core.channel import Channel
    from rpyc.core.stream import SocketStream

    if not (tune and tuning_wanted()):
        _fall_back(f"the tuning is turned off ({TUNING_ENV}=off, here or at the client)", 10)
        return False
    reason = rpyc_mismatch(stream, channel)
    if reason is not None:
        import rpyc

        _fall_back(f"{reason} (rpyc {getattr(rpyc, '__version__', '?')})", 20)
        return False
    done = _tuned(stream, SocketStream, {"write": send_frame})
    if done and channel is not None:
        _tuned(channel, Channel, {"recv": recv_frame, "send": send_frame_whole})
    return done


def imap_agent_nodelay(tune=True):
    """Tune the server's end of this connection; True if TCP_NODELAY is set.

    Stock rpyc servers leave Nagle's algorithm on, which delays the answer to
    a pipelined request by up to one delayed-ACK period (about 40 ms). And,
    with ``tune`` (the client's choice), large answers are sent without
    copying them again per chunk (:func:`send_frame`), where rpyc's
    internals here are as expected (:func:`send_linear`).
    """
    import socket

    channel = _serving_channel()
    stream = getattr(channel, "stream", None)
    if stream is not None:
        send_linear(stream, channel, tune)
    sock = getattr(stream, "sock", None)
    if isinstance(sock, socket.socket):
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return True
        except OSError:
            return False
    return False


def imap_agent_attach():
    """Whether this connection carries attached buffers both ways (its
    channel reads them and compresses nothing); from now on, if so, answers
    send their large buffers attached."""
    conn = _serving_connection()
    able = conn is not None and attach_shape(conn)
    _state["conn"] = conn if able else None
    return able


def imap_agent_compress(on):
    """Whether the server's end of this connection compresses what it sends.

    rpyc compresses every frame over 3 kB with zlib by default. Pickled
    batches gain little from it and pay for it in CPU on both ends (on a
    loopback or LAN link, more than the bytes saved): the client turns it
    off unless asked (the ``compress`` remote option). True if done.
    """
    channel = _serving_channel()
    if channel is None:
        return False
    channel.compress = bool(on)
    return True


def _pickled(records):
    """Log records as they travel back: a pickle, or None if there are none."""
    import pickle

    return pickle.dumps(records, PROTOCOL) if records else None


def imap_agent_heartbeat(beat, interval):
    """Call ``beat()`` (a function of the client) every ``interval`` seconds
    from a thread of this connection, as one-way messages, until the
    connection closes: while a batch runs, the client knows this host is
    alive.

    In a connection process of ``imap-server`` (which serves this connection
    alone), a closed connection ends the process: the client may have cut
    it off because a tasklet ran on after its consumer abandoned it
    (``skip=True``), and that tasklet would otherwise run on here."""
    import os
    import sys
    import threading
    import time

    import rpyc

    ping = rpyc.async_(beat)
    alone = sys.modules.get("_imap_server_connection") is not None

    def run():
        while True:
            time.sleep(interval)   # a steady pace, not a wait for anything
            try:
                ping()
            except Exception:   # the connection is closed
                if alone:
                    os._exit(0)
                _end_runner()
                return

    threading.Thread(target=run, name="imap-agent-heartbeat", daemon=True).start()


def imap_agent_init(payload):
    """Run the IMap's initializer once in this connection; return the log
    records it emitted (see ``imap_agent_logs``), or None."""

    def run():
        _state["init_error"] = initialize(payload)

    return _pickled(collect_logs(_state["logs"], run))


def imap_agent_logs(level):
    """Send back the log records of ``level`` and above that this
    connection's initializer and batches emit (:func:`kernel.log_collector`)."""
    _state["logs"] = log_collector(level)


def imap_agent_start(deliver):
    """Start the thread that runs this connection's batches, one after the
    other, in the order submitted: each answer goes back as a one-way call
    ``deliver(ticket, answer, logs)`` to the client. The thread that serves
    the connection stays free, so a batch queued here can be taken back
    (``imap_agent_revoke``) while another runs."""
    import threading

    import rpyc

    send = rpyc.async_(deliver)

    def run():
        while True:
            with _pending["cv"]:
                while not _pending["queue"]:
                    _pending["cv"].wait()
                item = _pending["queue"].popleft()
            if item is None:
                return
            ticket, key, data = item
            answer = []
            conn = _state.get("conn")

            def one(key=key, data=data, answer=answer, conn=conn):
                answer.append(answer_batch(_funcs.get(key), _state["init_error"], data,
                                           _WHERE, every=FLUSH_EVERY,
                                           oob=dumps_frames if conn is not None else None))
            logs = _pickled(collect_logs(_state["logs"], one))
            out = answer.pop()
            try:
                if type(out) is dict:   # large buffers: attached, not in the pickle
                    write_attached(conn, out["frames"])
                    out = ("frames", out["stream"], len(out["frames"]))
                send(ticket, out, logs)
            except Exception:   # the connection is closed
                return

    threading.Thread(target=run, name="imap-agent-runner", daemon=True).start()


def imap_agent_submit(ticket, key, payload, data):
    """Queue batch ``ticket`` of task ``key`` (its function first, when
    ``payload`` is not None) to run after those queued before it."""
    key = tuple(key)
    data = with_attached(data)
    if payload is not None:
        for old in [k for k in _funcs if k[0] != key[0]]:  # an older IMap run
            del _funcs[old]
        _funcs[key] = load_task(payload, _WHERE)
    with _pending["cv"]:
        _pending["queue"].append((ticket, key, data))
        _pending["cv"].notify()


def imap_agent_revoke(ticket):
    """Take batch ``ticket`` back if it has not started; True if taken."""
    with _pending["cv"]:
        queue = _pending["queue"]
        for i, item in enumerate(queue):
            if item is not None and item[0] == ticket:
                del queue[i]
                return True
    return False


def _end_runner():
    """The connection closed: batches queued here will not be wanted."""
    with _pending["cv"]:
        _pending["queue"].clear()
        _pending["queue"].append(None)
        _pending["cv"].notify()

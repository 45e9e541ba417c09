"""The remote agent's link: what crosses a remote connection, and how.

Uploaded as source with the agent (:mod:`imap.worker.remote_agent`), after
the kernel and before the agent, into each remote connection; the client
(:mod:`imap.backends.remote`, :mod:`imap.auth`) imports it as a module, for
its own end of the same link. Like the kernel, it imports nothing of
``imap`` when uploaded.

* **Messages.** Besides the set-up calls (the agent's ``imap_agent_*``), a
  batch's life on the link is three messages, plain tuples with their tag
  first and then the fields :data:`LINK_FIELDS` names, in order (the client
  reads them as NamedTuples of the same fields, :mod:`imap.transport.records`):
  :data:`RUN` and :data:`REVOKE` from the client (``imap_agent_post``), and
  :data:`ANSWERED` from the agent (the client's ``deliver``). A payload in
  them (a batch's items, a reply) is a pickle stream, or an
  :data:`ATTACHED` record whose large buffers came attached.
* **Attached buffers.** A large buffer crosses as a frame of its own, read
  into a buffer of its size (see "attached buffers" below).
* **rpyc's transport, tuned.** Large frames are sent and read in linear
  time (see "rpyc's transport, tuned" below).
"""

if "frames_record" not in globals():  # imported as a module, not uploaded after the kernel
    from .kernel import frames_record

# -- the link's messages ----------------------------------------------------------------

RUN = "run"             # client -> agent: run a batch after those sent before it
REVOKE = "revoke"       # client -> agent: take a batch back if it has not started
ANSWERED = "answered"   # agent -> client: a batch's reply, and the log records it emitted
ATTACHED = "attached"   # a payload whose ``count`` large buffers came attached before it
LINK_FIELDS = {
    RUN: ("ticket", "key", "payload", "data"),   # payload: the task's function, or None
    REVOKE: ("ticket",),
    ANSWERED: ("ticket", "data", "logs"),        # logs: a pickled list of records, or None
    ATTACHED: ("stream", "count"),
}


def run_message(ticket, key, payload, data):
    """Run batch ``ticket`` of task ``key`` (:data:`RUN`)."""
    return (RUN, ticket, key, payload, data)


def revoke_message(ticket):
    """Take batch ``ticket`` back if it has not started (:data:`REVOKE`)."""
    return (REVOKE, ticket)


def answered_message(ticket, data, logs):
    """The reply ``data`` to batch ``ticket``, with its ``logs`` (:data:`ANSWERED`)."""
    return (ANSWERED, ticket, data, logs)


def attached_record(stream, count):
    """A payload whose ``count`` large buffers are attached (:data:`ATTACHED`)."""
    return (ATTACHED, stream, count)


def link_fields(message, tag):
    """The fields of ``message``, a link record tagged ``tag`` (in
    :data:`LINK_FIELDS` order); a ValueError if it is not one."""
    kind = message[0] if type(message) is tuple and message else None
    fields = LINK_FIELDS.get(kind)
    if kind != tag or fields is None:
        raise ValueError(f"a link record tagged {kind!r} where one tagged {tag!r} is "
                         f"expected (known tags: {', '.join(LINK_FIELDS)})")
    if len(message) != 1 + len(fields):
        raise ValueError(f"a link record tagged {tag!r} has {len(message) - 1} fields, "
                         f"not {len(fields)} ({', '.join(fields)})")
    return message[1:]


def link_tag(message):
    """The tag of the link record ``message`` (None if it has none)."""
    return message[0] if type(message) is tuple and message else None


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
# never writes (ATTACHED_FLAG, where rpyc writes 0 or 1 for "compressed");
# it precedes the message it belongs to, which names how many it takes: an
# :data:`ATTACHED` record in place of a pickle stream. Only the tuned
# channels below read and write them, on connections whose two ends are
# tuned (``imap_agent_attach``). Each end has one thread that sends
# attachments (the client's driver, the agent's runner) and one that reads
# the connection and handles its messages (so the frames a message takes
# are the first ones that thread read and has not handed out).

ATTACHED_FLAG = 2


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
    """The payload ``data`` of a link message as the kernel reads it: a
    pickle stream as it is, an :data:`ATTACHED` record as a frames record
    of the buffers attached before the message."""
    if isinstance(data, (bytes, bytearray)):
        return data
    stream, count = link_fields(data, ATTACHED)
    return frames_record(stream, take_attached(count))


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
            stream.write(channel.FRAME_HEADER.pack(view.nbytes, ATTACHED_FLAG))
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
        if compressed != ATTACHED_FLAG:
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


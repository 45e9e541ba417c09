"""The code a remote worker runs, uploaded as source into each connection.

:class:`~imap.backends.remote.RemoteBackend` executes the batch kernel
(:mod:`imap.worker.kernel`), the link (:mod:`imap.worker.agent_link`) and
then this file, as text, in the namespace of a classic RPyC connection with
``conn.execute(...)``, and calls these entry points through
``conn.namespace``:

* ``imap_agent_nodelay(tune)`` -> bool — once per connection: turns Nagle's
  algorithm off on the server's socket, so pipelined answers are not delayed,
  and, with ``tune``, has its stream send large answers without copying them
  per chunk (see "rpyc's transport, tuned" in :mod:`.agent_link`).
* ``imap_agent_compress(on)`` -> bool — once per connection: whether the
  server compresses its answers (rpyc's zlib framing; off by default).
* ``imap_agent_attach()`` -> bool — once per connection, after the two
  above: whether the connection carries *attached* buffers (see
  ``agent_link.write_attached``); if so, items may come and answers go with
  their large buffers attached.
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
  one-way call ``deliver(message)``, an ``agent_link.ANSWERED`` record of
  the batch's ticket, the kernel's reply (:func:`kernel.answer_batch`; never
  a partial one: a remote batch is answered once) and the pickle of the log
  records it emitted (:func:`kernel.record_data`), if any.
* ``imap_agent_post(message)`` — one asynchronous call per link record
  (batches travel while others run): ``RUN`` queues a batch; its
  ``payload`` is the cloudpickle of ``(func, args, kwargs)`` of task ``key``
  the first time this connection sees that task, else None (the function is
  installed at once, so taking the batch back does not lose it); its
  ``data``, the pickle of the list of items or an ``ATTACHED`` record.
  ``REVOKE`` takes a submitted batch back if it has not started (late
  binding: the client runs it elsewhere), and returns whether it did.

It imports nothing of ``imap`` when uploaded, so the remote host needs only
Python, rpyc and cloudpickle.
"""

if "answer_batch" not in globals():  # imported as a module, not uploaded after the kernel
    from .agent_link import (
        REVOKE,
        RUN,
        _serving_channel,
        _serving_connection,
        answered_message,
        attach_shape,
        attached_record,
        link_fields,
        link_tag,
        send_linear,
        with_attached,
        write_attached,
    )
    from .kernel import (
        FLUSH_EVERY,
        PROTOCOL,
        answer_batch,
        collect_logs,
        dumps_frames,
        initialize,
        load_task,
        log_collector,
        payload_parts,
    )

_WHERE = "the remote worker"
_funcs = {}             # task key -> (func, args, kwargs) or (None, packed error)
_state = {"init_error": None, "logs": None, "conn": None}   # conn: if it carries attachments


def _new_pending():
    import collections
    import threading

    return {"queue": collections.deque(), "cv": threading.Condition()}


_pending = _new_pending()   # batches submitted, not yet started: (ticket, key, data)


def imap_agent_nodelay(tune=True):
    """Tune the server's end of this connection; True if TCP_NODELAY is set.

    Stock rpyc servers leave Nagle's algorithm on, which delays the answer to
    a pipelined request by up to one delayed-ACK period (about 40 ms). And,
    with ``tune`` (the client's choice), large answers are sent without
    copying them again per chunk (``agent_link.send_frame``), where rpyc's
    internals here are as expected (``agent_link.send_linear``).
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
    ``deliver(message)`` to the client (an ``ANSWERED`` record). The thread
    that serves the connection stays free, so a batch queued here can be
    taken back (a ``REVOKE`` record) while another runs."""
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
                stream, frames = payload_parts(out)
                if frames is not None:   # large buffers: attached, not in the pickle
                    write_attached(conn, frames)
                    out = attached_record(stream, len(frames))
                send(answered_message(ticket, out, logs))
            except Exception:   # the connection is closed
                return

    threading.Thread(target=run, name="imap-agent-runner", daemon=True).start()


def imap_agent_post(message):
    """Handle the link record ``message`` from the client: ``RUN`` queues a
    batch to run after those queued before it (its function first, when
    its payload is not None); ``REVOKE`` takes a batch back if it has not
    started, and returns True if it did."""
    tag = link_tag(message)
    if tag == REVOKE:
        return _revoke(*link_fields(message, REVOKE))
    ticket, key, payload, data = link_fields(message, RUN)
    key = tuple(key)
    data = with_attached(data)
    if payload is not None:
        for old in [k for k in _funcs if k[0] != key[0]]:  # an older IMap run
            del _funcs[old]
        _funcs[key] = load_task(payload, _WHERE)
    with _pending["cv"]:
        _pending["queue"].append((ticket, key, data))
        _pending["cv"].notify()
    return None


def _revoke(ticket):
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

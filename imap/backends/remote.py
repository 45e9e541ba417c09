"""Remote workers: classic RPyC connections, each driven by one local thread.

Data flow::

    Feeder --submit(batch)--> dispatcher --bind--> outbox --> driver thread (one a connection)
                                                   ^  | rpyc, async: post(LinkRun)
                                        given back |  |                post(LinkRevoke)
                                                   |  v
                            remote agent (namespace of the connection): a queue, and a
                            runner thread that runs its batches one after the other
                                                      | one-way: deliver(LinkAnswered)
    engine.deliver / engine.lost <--------------------+  (served by the driver thread)

* ``start`` opens ``n`` connections per host (TCP, optional TLS, optional
  shared-secret handshake, then RPyC to a classic server), uploads the agent
  (the batch kernel, :mod:`imap.worker.agent_link` and
  :mod:`imap.worker.remote_agent`, as source) into each, runs the
  initializer there and starts the agent's runner thread. An unreachable
  host is a ``ConnectionError`` naming ``host:port``.
* ``submit`` (called by the Feeder) pickles the items (their large buffers
  apart: they cross as frames attached to the batch's message, see
  ``agent_link.write_attached``; answers come back likewise), then queues the batch
  in the dispatcher (:mod:`imap.flow.dispatch`, common to process and remote
  workers): a batch is bound to the least busy live connection holding fewer
  than ``prefetch`` batches; when a worker idles with nothing queued, a
  batch a connection holds but whose agent has not started it is revoked
  and bound to the idle worker.
* One **driver thread** per connection does only IO: it sends what other
  threads post (:class:`_Send`, :class:`_Revoke`; a socket pair wakes it)
  as link records (:mod:`imap.transport.records`), and serves the
  connection: answers, replies to revokes and the agent's heartbeats. An
  answer is dispatched to the freed connection and handed to the engine. A
  connection silent for ``liveness`` seconds while it holds work counts as
  broken. When the connection breaks, the first batch it held (the only one
  its agent may have been running) goes to ``lost(batch, reason)`` and the
  others to other workers.
* A lost connection is brought back in the background (:mod:`.rejoin`):
  reconnected with backoff, set up again, and added to the pool. While none
  is left, queued batches wait ``worker_wait`` seconds for one, then are
  reported lost.

:class:`MixedBackend` puts local (thread or process) workers and remote ones
behind one interface.
"""

from __future__ import annotations

import logging
import queue
import select
import socket
import threading
import time
from typing import Any, NamedTuple

from ..errors import UnsendableError
from ..options import parse_address
from ..remote.connect import CONNECT_TIMEOUT, LIVENESS, abort, open_link
from ..remote.rejoin import Rejoiner
from ..transport import byvalue, pickling, wire
from ..transport.records import Attached, LinkAnswered, LinkRevoke, LinkRun
from ..worker import agent_link
from .base import GIVE_UP_AFTER, Batch, BatchState, Deliver, Lost
from .slot import Slot
from .slots import SlotBackend

log = logging.getLogger("imap")

POLL = 0.2              # seconds between checks for a forced stop while a batch runs
BEAT = 1.0              # seconds between a remote worker's heartbeats, at most
WORKER_WAIT = 30.0      # seconds queued batches wait for a lost host to come back
REJOIN_TIMEOUT = 5.0    # connect timeout of an attempt to bring a host back, at most


class _Send(NamedTuple):
    """What the driver thread is asked to do: send ``batch`` (the task's
    function first, if ``payload`` is not None)."""

    batch: Batch
    payload: bytes | None


class _Revoke(NamedTuple):
    """What the driver thread is asked to do: ask the agent to give ``batch``
    back if it has not started it."""

    batch: Batch


class _Link(Slot):
    """One connection to a remote worker, and the thread that drives it."""

    __slots__ = ("address", "conn", "sock", "post_remote", "outbox", "thread",
                 "wake_r", "wake_w", "attach")

    def __init__(self, name: str, address: tuple, conn: Any, sock: socket.socket,
                 owner: SlotBackend) -> None:
        import rpyc

        super().__init__(name, owner)
        self.address = address   # (host, port)
        self.conn = conn
        self.sock = sock
        self.post_remote = rpyc.async_(conn.namespace["imap_agent_post"])   # link records
        self.outbox: queue.SimpleQueue = queue.SimpleQueue()   # _Send, _Revoke, None: close
        self.thread: threading.Thread | None = None
        # Other threads wake the driver (waiting on the socket) through this pair.
        self.wake_r, self.wake_w = socket.socketpair()
        self.wake_r.setblocking(False)
        self.wake_w.setblocking(False)
        # Answers are not delayed by Nagle's algorithm on the server's end;
        # its transport is tuned as this end's is, unless turned off here.
        conn.namespace["imap_agent_nodelay"](agent_link.tuning_wanted())
        # Large buffers cross attached (no pickle holds them) if both ends can.
        self.attach = (agent_link.attach_shape(conn)
                       and bool(conn.namespace["imap_agent_attach"]()))

    def post(self, item: Any) -> None:
        """Hand ``item`` to the driver thread and wake it."""
        self.outbox.put(item)
        try:
            self.wake_w.send(b"!")
        except OSError:   # full (it is awake anyway) or closed
            pass

    def beat(self) -> None:
        """Called by the remote worker's heartbeat thread (via RPyC)."""
        self.heard = time.monotonic()

    def deliver(self, message: tuple) -> None:
        """Called by the remote worker's runner thread (via RPyC, served by
        the driver thread): ``message`` is a :class:`LinkAnswered` record."""
        self.heard = time.monotonic()
        answered = LinkAnswered.from_wire(message)
        _relay(answered.logs, self)
        self.owner._answered(self, agent_link.with_attached(answered.data), answered.ticket)

    def close(self) -> None:
        _close(self, abort=True)


class _Forced(Exception):
    pass


class _Silent(Exception):
    pass


class RemoteBackend(SlotBackend):
    """Connections to classic RPyC servers, one remote worker each.

    Args:
        hosts: ``[("host:port", n), ...]``.
        options: ``secret``, ``ssl``, ``ssl_certfile``, ``ssl_keyfile``,
            ``ssl_ca_certs``, ``connect_timeout`` (see :func:`connect`);
            ``liveness`` (seconds a busy connection may go without a sign
            of life before its host is declared lost; default 10),
            ``reconnect`` (bring lost hosts back; default True),
            ``worker_wait`` (seconds queued batches wait for a host to come
            back once no remote worker is left; default 30), ``compress``
            (zlib-compress batches and answers over 3 kB both ways, for
            slow links; default False).
    """

    kind = "remote"
    partial = False   # an agent answers a batch once
    carries_frames = True   # large buffers cross attached, where a connection can
    where = "to a remote worker"
    _none_left = "no remote worker is left"

    def __init__(self, hosts: list, deliver: Deliver, lost: Lost,
                 initializer: Any = None, initargs: tuple = (),
                 options: dict | None = None, worker_logs: bool = True) -> None:
        super().__init__(deliver, lost, initializer, initargs)
        self.worker_logs = worker_logs
        self.hosts = [(parse_address(address), n) for address, n in hosts]
        self.options = dict(options or {})
        self.liveness = float(self.options.get("liveness", LIVENESS))
        self.reconnect = bool(self.options.get("reconnect", True))
        self.worker_wait = float(self.options.get("worker_wait", WORKER_WAIT))
        self._forced = False
        self._items_by_value: dict = {}   # task key -> its items need cloudpickle

    # -- life cycle --------------------------------------------------------

    def start(self) -> None:
        self._stopping = self._forced = False
        self._init = self._init_payload()
        self._level = wire.log_level()
        links: list[_Link] = []
        try:
            for (host, port), n in self.hosts:
                for i in range(n):
                    links.append(self._make_link(host, port, i, self.options))
        except BaseException:
            for link in links:
                _close(link, abort=True)
            raise
        self._slots = links
        self._rejoiner = Rejoiner(self._join_link, self.worker_wait, self._orphans)
        for link in links:
            self._start_driver(link)

    def _make_link(self, host: str, port: int, i: int, options: dict) -> _Link:
        """Open and set up connection ``i`` to ``host:port``."""
        conn, sock = open_link(host, port, options)
        try:
            link = _Link(f"{host}:{port}#{i}", (host, port), conn, sock, self)
            if self.worker_logs:   # first: the initializer's records too
                conn.namespace["imap_agent_logs"](self._level)
            # several beats per liveness period: one late beat is not silence
            conn.namespace["imap_agent_heartbeat"](link.beat, min(BEAT, self.liveness / 4))
            conn._config["sync_request_timeout"] = None   # an initializer may take long
            if self._init is not None:
                _relay(conn.namespace["imap_agent_init"](self._init), link)
            conn.namespace["imap_agent_start"](link.deliver)
        except Exception as exc:
            abort(conn, sock)
            raise ConnectionError(f"lost remote worker host {host}:{port} while setting "
                                  f"up: {exc!r}") from exc
        link.heard = time.monotonic()
        return link

    def _start_driver(self, link: _Link) -> None:
        name = f"imap-remote-{link.name}"
        link.thread = threading.Thread(target=self.guarded(self._drive, name), args=(link,),
                                       name=name, daemon=True)
        link.thread.start()

    def _join_link(self, link: _Link) -> None:
        """A lost host is back (a Rejoiner thread): its connection joins."""
        if self._join(link):
            self._start_driver(link)
        else:
            _close(link, abort=True)

    def stop(self, forced: bool = False) -> None:
        self._forced = forced
        links = self._begin_stop()
        if self._rejoiner is not None:
            self._rejoiner.stop(REJOIN_TIMEOUT)
        for link in links:
            if link.held and link.held[0].abandoned:
                self._cut_off(link)   # it would run on, for nobody
            link.post(None)
        for link in links:
            if link.thread is not None and link.thread is not threading.current_thread():
                link.thread.join()

    def submit(self, batch: Batch) -> None:
        task = batch.task
        by_value = self._items_by_value.get(task.key)
        if by_value is None:   # the first batch of the task tells
            by_value = bool(byvalue.send_by_value(batch.items))
            self._items_by_value[task.key] = by_value
        if batch.data is None:
            self._pack(batch)
        super().submit(batch)

    def _pack(self, batch: Batch) -> None:
        """Pickle the items of ``batch``, their large buffers apart (sent as
        attached frames, see agent_link.write_attached); items of classes
        from the user's modules with cloudpickle, which sends the classes by
        value (pickle would name a module the host lacks)."""
        wire.pack_frames(batch, by_value=self._items_by_value.get(batch.task.key, False))

    def _send(self, link: _Link, batch: Batch, payload: bytes | None) -> None:
        link.post(_Send(batch, payload))

    def _reclaim(self, link: _Link, batch: Batch) -> None:
        # The agent answers later (the driver thread asks it).
        link.post(_Revoke(batch))

    # -- the driver threads ------------------------------------------------------

    def _drive(self, link: _Link) -> None:
        closing = False
        conn = link.conn
        try:
            while True:
                while True:   # what other threads asked for
                    try:
                        item = link.outbox.get_nowait()
                    except queue.Empty:
                        break
                    if item is None:
                        closing = True
                    elif type(item) is _Send:
                        self._submit_remote(link, item.batch, item.payload)
                    else:   # _Revoke
                        self._revoke_remote(link, item.batch)
                if self._forced:
                    raise _Forced
                with self._lock:
                    idle = not link.held
                if closing and idle:
                    break
                if not idle and link.silent_for() > self.liveness:
                    raise _Silent(f"no sign of life for {self.liveness:g} s")
                if _pending_bytes(link.sock) or _readable(link, POLL):
                    conn.serve(0)   # answers, heartbeats, replies
        except _Forced:
            _close(link, abort=True)  # a batch may be running: do not wait for it
        except _Silent as exc:   # a host that froze or a link that went dead
            _close(link, abort=True)
            self._link_lost(link, exc)
        except Exception as exc:  # the connection broke
            self._link_lost(link, exc)
        finally:
            _close(link)

    def _submit_remote(self, link: _Link, batch: Batch, payload: bytes | None) -> None:
        with self._lock:
            if batch not in link.held:   # taken back before it was sent
                return
            if not any(b.ticket for b in link.held if b is not batch):
                link.heard = time.monotonic()   # idle until now: silence counts from here
        data: Any = batch.data
        if batch.frames:   # large buffers apart
            if link.attach:
                agent_link.write_attached(link.conn, batch.frames)
                data = Attached(batch.data, len(batch.frames)).to_wire()
            else:   # a connection that cannot carry them: all in the pickle
                data = pickling.dumps(batch.items)
        message = LinkRun(batch.ticket, batch.task.key, payload, data).to_wire()
        answer = link.post_remote(message)
        answer.add_callback(lambda res, b=batch: self._submitted(link, b, res))

    def _submitted(self, link: _Link, batch: Batch, res: Any) -> None:
        """The agent's reply to a submit (driver thread): only an error matters."""
        if not res.error:
            return
        try:
            res.value  # noqa: B018 - raises the agent's error
        except (OSError, EOFError):
            return   # the connection broke: the driver sees it
        except Exception as exc:  # the agent refused the batch: fail it alone
            with self._lock:
                if batch not in link.held:
                    return
                link.held.remove(batch)
                self._dispatch()
            wire.fail_batch(self.deliver, batch, UnsendableError(
                f"the remote worker {link.name} failed to take a batch: {exc}"), exc)

    def _revoke_remote(self, link: _Link, batch: Batch) -> None:
        answer = link.post_remote(LinkRevoke(batch.ticket).to_wire())

        def given_back(res: Any) -> None:
            ok = not res.error and bool(res.value)
            with self._lock:
                self._given_back(link, batch, ok)
        answer.add_callback(given_back)

    def _cut_off(self, link: _Link) -> None:
        # The driver's wait breaks and it reports the link lost. The host's
        # connection process (imap-server) ends when it sees the socket shut.
        try:
            link.sock.shutdown(socket.SHUT_RDWR)
        except OSError:  # already closed
            pass

    def _link_lost(self, link: _Link, exc: BaseException) -> None:
        given_up = bool(link.held) and link.held[0].state is BatchState.GIVEN_UP
        # The agent runs its batches one after the other, in the order sent,
        # each answer sent before the next starts: only the first batch not
        # answered may have been running, and the others go to other
        # workers. (That answer may have been lost on the way, the next batch
        # started meanwhile: it then runs twice, as a lost batch's tasklets may.)
        if self.reconnect and self._rejoiner is not None:
            # First: tasklets that only this host can run (functional
            # dependencies) wait for it from the moment it is gone.
            host, port = link.address
            index = int(link.name.rsplit("#", 1)[1])
            options = dict(self.options)
            options["connect_timeout"] = min(
                float(options.get("connect_timeout", CONNECT_TIMEOUT)), REJOIN_TIMEOUT)
            self._rejoiner.lost(link.name, lambda: self._make_link(host, port, index,
                                                                  options))
        held, stopping = self._slot_died(link, started=1)
        if stopping:
            return
        self._workers_lost += 1
        again = "; trying to bring it back" if self.reconnect else "; not replacing it"
        if given_up:
            log.warning("remote worker %s still ran a tasklet abandoned %.0f s ago "
                        "(skip=True); its connection was cut%s", link.name, GIVE_UP_AFTER,
                        again)
        else:
            log.warning("remote worker %s lost (%s) holding %d batch(es)%s", link.name, exc,
                        len(held), again)
        reason = f"remote worker {link.name} lost: {exc!r}"
        for batch in held:
            if batch.state is BatchState.GIVEN_UP:
                self._settle_given_up(batch)
            else:
                self.lost(batch, reason)
        self._orphans()


def _pending_bytes(sock: Any) -> int:
    """Bytes a TLS socket has decrypted and not yet handed out (select
    cannot see them)."""
    pending = getattr(sock, "pending", None)
    return pending() if pending is not None else 0


def _readable(link: _Link, timeout: float) -> bool:
    """Wait up to ``timeout`` s for the connection to have something to read,
    or for another thread to wake the driver; True if the connection has."""
    ready, _, _ = select.select([link.sock, link.wake_r], [], [], timeout)
    if link.wake_r in ready:
        try:
            while link.wake_r.recv(4096):
                pass
        except OSError:   # drained (or closed)
            pass
    return link.sock in ready


def _relay(logs: bytes | None, link: _Link) -> None:
    """Hand the log records a remote worker sent to this process's loggers."""
    wire.relay_logs(logs, f"remote {link.name}")


def _close(link: _Link, abort: bool = False) -> None:
    """Close a connection; ``abort``: cut the socket first, waiting for no answer."""
    if abort:
        try:
            link.sock.shutdown(socket.SHUT_RDWR)
        except OSError:  # already closed
            pass
    try:
        link.conn.close()  # asks the server to close: answered at once unless busy
    except Exception:  # already broken
        pass
    for end in (link.wake_r, link.wake_w):
        end.close()

"""Remote RPyC workers against real servers started as subprocesses on 127.0.0.1."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import cloudpickle
import pytest
import remote_helpers as h
from remote_helpers import collect, server
from support import kill_group, wait_until

from imap import IMap, UnsendableError, WorkerInitError, WorkerLostError, WorkerTraceback, imap
from imap.embedded import local

# The servers have nothing of this source tree: the test functions travel by value.
cloudpickle.register_pickle_by_value(h)

pytestmark = pytest.mark.timeout(90)


@pytest.fixture(scope="module", params=["imap", "classic", "classic-forking"])
def address(request):
    with server(request.param) as (addr, _):
        yield addr


def test_stock_servers_cannot_import_imap():
    import rpyc

    with server("classic") as (addr, _):
        host, port = addr.split(":")
        conn = rpyc.classic.connect(host, int(port))
        try:
            with pytest.raises(ImportError):
                conn.execute("import imap")
        finally:
            conn.close()


def test_chained_tasks_equal_serial(address):
    m = IMap(worker_num=0, worker_remote=[(address, 2)], stride=8)
    first = m.add_task(h.inc, range(100))
    second = m.add_task(h.double, first)
    m.start()
    assert list(second) == [2 * (x + 1) for x in range(100)]
    m.stop()


def test_mixed_with_local_threads_equal_serial(address):
    results = imap(h.inc, range(300), worker_num=2, worker_type="thread",
                   worker_remote=[(address, 2)], stride=16)
    assert list(results) == [x + 1 for x in range(300)]


def test_mixed_with_local_processes_uses_both(address):
    results = list(imap(h.where, range(200), worker_num=1, worker_type="process",
                        worker_remote=[(address, 1)], stride=4, chunksize=1))
    assert set(results) <= {"local", "remote"}
    assert "remote" in results


def test_remote_exception_has_remote_traceback(address):
    with IMap(worker_num=0, worker_remote=[(address, 1)]) as m:
        task = m.add_task(h.fail_on_three, range(6))
        m.start()
        results = collect(task)
    assert results[:3] == [0, 1, 2] and results[4:] == [4, 5]
    error = results[3]
    assert isinstance(error, ValueError) and str(error) == "item 3 is bad"
    assert isinstance(error.__cause__, WorkerTraceback)
    assert "fail_on_three" in str(error.__cause__)


def test_exception_only_cloudpickle_can_carry_arrives_intact_from_remote(address):
    with IMap(worker_num=0, worker_remote=[(address, 1)]) as m:
        task = m.add_task(h.raise_local_class_on, range(4), args=(2,))
        m.start()
        results = collect(task)
    assert [results[0], results[1], results[3]] == [0, 1, 3]
    assert type(results[2]).__name__ == "LocalError"
    assert str(results[2]) == "local failure on 2"
    assert isinstance(results[2].__cause__, WorkerTraceback)


def test_unpicklable_item_fails_only_its_tasklet_on_remote_workers(address):
    import threading

    items = [0, 1, threading.Lock(), 3]
    with IMap(worker_num=0, worker_remote=[(address, 1)], stride=4) as m:
        task = m.add_task(h.inc, items)
        m.start()
        results = collect(task)
    assert results[:2] == [1, 2] and results[3] == 4
    assert isinstance(results[2], UnsendableError)
    assert "item 2" in str(results[2])


def test_imports_decorator_runs_remotely_without_imap_there(address):
    # The stock servers cannot import imap: the @imports wrapper travels by value.
    results = imap(h.make_json_dumps(), range(3), worker_num=0, worker_remote=[(address, 1)])
    assert list(results) == ['{"x": 0}', '{"x": 1}', '{"x": 2}']


def test_initializer_runs_remotely(address):
    # It fails there (no such directory): each tasklet fails with a
    # WorkerInitError whose cause is the initializer's own error.
    with IMap(worker_num=0, worker_remote=[(address, 2)],
              initializer=h.touch, initargs=(0, "/nonexistent-dir")) as m:
        task = m.add_task(h.where, range(4))
        m.start()
        results = collect(task)
    assert len(results) == 4
    assert all(isinstance(r, WorkerInitError) for r in results)
    assert all(isinstance(r.__cause__, FileNotFoundError) for r in results)
    assert "touch" in str(results[0])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("compress", [None, False, True])
def test_wire_compression_is_off_at_both_ends_unless_asked(address, compress):
    # rpyc zlib-compresses large frames by default, on both ends: CPU that a
    # pickled batch does not repay on a fast link.
    from imap.remote.connect import connect

    host, port = address.split(":")
    options = {} if compress is None else {"compress": compress}
    conn = connect(host, int(port), options)
    try:
        assert conn._channel.compress is bool(compress)
        assert conn.eval("_serving_channel().compress") is bool(compress)
        # Answers still arrive whole either way.
        data = bytes(range(256)) * 64
        assert bytes(conn.eval("bytes(range(256)) * 64")) == data
    finally:
        conn.close()


def test_compress_option_must_be_a_bool():
    with pytest.raises(ValueError, match="compress"):
        IMap(worker_num=0, worker_remote=[("127.0.0.1:1", 1)],
             remote_options={"compress": "yes"})


def test_unreachable_host_is_connection_error_naming_it():
    port = _free_port()
    m = IMap(worker_num=0, worker_remote=[(f"127.0.0.1:{port}", 1)])
    m.add_task(h.inc, range(3))
    with pytest.raises(ConnectionError, match=f"127.0.0.1:{port}"):
        m.start()


@pytest.mark.parametrize("kind", ["imap", "classic"])
@pytest.mark.parametrize("retries", [0, 1])
def test_killed_server_fails_only_its_tasklets(kind, retries, worker_type, tmp_path):
    with server(kind) as (addr, proc):
        m = IMap(worker_num=2, worker_type=worker_type, worker_remote=[(addr, 2)],
                 stride=8, chunksize=1)
        results = m.add_task(h.hold_on_remote, range(40), args=(str(tmp_path),),
                             retries=retries)
        m.start()
        wait_until(lambda: any(tmp_path.glob("held-*")), 30, "a remote worker to hold an item")
        kill_group(proc)
        out = collect(iter(results))
        status = m.status()
        m.stop()
    held = {int(p.name.split("-")[1]) for p in tmp_path.glob("held-*")}
    assert len(out) == 40
    lost = {i for i, r in enumerate(out) if isinstance(r, WorkerLostError)}
    assert all(out[i] == 2 * i for i in range(40) if i not in lost)
    assert status.workers_lost == 2
    if retries:
        assert not lost
    else:  # only what the 2 connections held: at most 2 batches of 1 each
        assert held <= lost and len(lost) <= 4


# --- security -------------------------------------------------------------------------


def _refused(address: str, tmp_path, **options) -> None:
    """An IMap with these client options is refused, and the function never ran."""
    m = IMap(worker_num=0, worker_remote=[(address, 1)], remote_options=options)
    m.add_task(h.touch, [1], args=(str(tmp_path),))
    with pytest.raises(ConnectionError, match=address):
        m.start()
    assert not (tmp_path / "marker-1").exists()


def _raw_rpyc_refused(address: str, marker) -> None:
    """A stock rpyc client cannot execute anything either."""
    import rpyc

    host, port = address.split(":")
    with pytest.raises((EOFError, OSError)):
        conn = rpyc.classic.connect(host, int(port))
        try:
            conn.execute(f"open({str(marker)!r}, 'w').close()")
        finally:
            conn.close()
    assert not marker.exists()


def _accepted(address: str, tmp_path, **options) -> None:
    m = IMap(worker_num=0, worker_remote=[(address, 2)], remote_options=options)
    results = m.add_task(h.inc, range(4))
    m.start()
    assert list(results) == [1, 2, 3, 4]
    m.stop()


@pytest.fixture(scope="module")
def secret_server(tmp_path_factory):
    path = tmp_path_factory.mktemp("secret") / "secret"
    path.write_text("correct horse battery staple\n")
    # A client that sends no answer to the challenge is dropped after 2 s.
    with server("imap", ("--secret-file", str(path), "--auth-timeout", "2")) as (addr, _):
        yield addr


def test_secret_right_is_accepted(secret_server, tmp_path):
    _accepted(secret_server, tmp_path, secret="correct horse battery staple")


def test_secret_wrong_is_refused(secret_server, tmp_path):
    _refused(secret_server, tmp_path, secret="wrong")


def test_secret_missing_is_refused(secret_server, tmp_path):
    _refused(secret_server, tmp_path)
    _raw_rpyc_refused(secret_server, tmp_path / "raw-marker")


def test_secret_from_environment(tmp_path):
    with server("imap", ("--secret-env", "IMAP_TEST_SECRET"),
                env={"IMAP_TEST_SECRET": "s3cret"}) as (addr, _):
        _accepted(addr, tmp_path, secret="s3cret")
        _refused(addr, tmp_path, secret="other")


# --- engine behaviour with remote workers ------------------------------------------------


def test_timeout_then_same_result_later(address, tmp_path):
    release = tmp_path / "release"
    with IMap(worker_num=0, worker_remote=[(address, 1)]) as m:
        task = m.add_task(h.wait_for_file, range(3), args=(str(release),))
        m.start()
        assert m.status().workers == 1
        with pytest.raises(TimeoutError):
            task.next(timeout=0.2)
        release.write_text("go")
        assert list(task) == [0, 1, 2]


def test_unordered_returns_every_result(address):
    with IMap(worker_num=0, worker_remote=[(address, 2)], ordered=False, stride=6) as m:
        task = m.add_task(h.double, range(50))
        m.start()
        assert sorted(task) == [2 * x for x in range(50)]


def test_forced_stop_does_not_wait_for_a_running_batch(tmp_path):
    with server("imap") as (addr, _):
        m = IMap(worker_num=0, worker_remote=[(addr, 1)])
        m.add_task(h.hold_on_remote, range(4), args=(str(tmp_path),))
        m.start()
        wait_until(lambda: any(tmp_path.glob("held-*")), 30, "the remote batch to start")
        started = time.monotonic()
        m.stop(forced=True)
        assert time.monotonic() - started < 5


# --- the server ----------------------------------------------------------------------------


def _run_server(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = dict(os.environ, PYTHONPATH=str(h.ROOT), **(env or {}))
    return subprocess.run([sys.executable, "-m", "imap.server", *args], env=full_env,
                          capture_output=True, text=True, timeout=30)


def test_server_refuses_open_bind_without_protection():
    proc = _run_server("--host", "0.0.0.0", "--port", "0")
    assert proc.returncode == 2
    assert "--insecure" in proc.stderr and "0.0.0.0" in proc.stderr


def test_server_rejects_unset_secret_variable():
    proc = _run_server("--secret-env", "IMAP_TEST_UNSET_VARIABLE")
    assert proc.returncode == 2
    assert "IMAP_TEST_UNSET_VARIABLE" in proc.stderr


def test_server_exits_cleanly_on_sigterm():
    with server("imap") as (addr, proc):
        proc.terminate()
        assert proc.wait(timeout=20) == 0


def test_server_local_is_a_deprecated_alias_of_embedded_local():
    with pytest.warns(DeprecationWarning, match=r"from imap\.embedded import local"):
        from imap.server import local as old_local
    assert old_local is local


def test_server_module_still_raises_attribute_error_for_unknown_names():
    import imap.server

    with pytest.raises(AttributeError, match="no_such_name"):
        imap.server.no_such_name  # noqa: B018 - the access is the test


def test_local_server_serves_then_stops():
    with local(2) as remote:
        (address, n), = remote
        assert n == 2 and address.startswith("127.0.0.1:")
        assert list(imap(h.inc, range(5), worker_num=0, worker_remote=remote)) == [1, 2, 3, 4, 5]
    with pytest.raises(ConnectionError, match=address):
        list(imap(h.inc, range(5), worker_num=0, worker_remote=remote))


def test_local_workers_share_module_state_after_remote_runs_sent_the_module_by_value(address):
    # A run with remote workers registers the user's modules to travel by
    # value (process-wide); a later run on local processes still gets its
    # functions by reference, so the initializer's settings are seen by the
    # task's function (each by-value pickle would have globals of its own).
    import worker_funcs as wf

    assert list(imap(wf.square, range(3), worker_num=0, worker_remote=[(address, 1)])) == [0, 1, 4]
    with IMap(worker_num=2, initializer=wf.set_init_value, initargs=("ready",)) as m:
        m.add_task(wf.read_init_value, range(4))
        m.start()
        assert list(m) == [(x, "ready") for x in range(4)]


def _reverse(b):
    return b[::-1]


@pytest.mark.parametrize("kind", ["imap", "classic"])
def test_large_items_and_results_cross_whole_in_frames_sent_as_views(kind) -> None:
    """Frames of several MiB go both ways (both ends send them in linear time)."""
    from imap.remote.connect import connect
    from imap.worker.agent_link import recv_frame, send_frame
    items = [os.urandom(3 * 2 ** 20 + k) for k in range(6)]
    with server(kind) as (addr, _):
        host, port = addr.split(":")
        conn = connect(host, int(port))
        try:
            assert type(conn._channel.stream).write is send_frame
            assert type(conn._channel).recv is recv_frame
        finally:
            conn.close()
        with IMap(worker_type="thread", worker_num=0, worker_remote=[(addr, 2)]) as m:
            task = m.add_task(_reverse, items)
            m.start()
            assert list(task) == [b[::-1] for b in items]


def test_send_frame_sends_every_byte_in_order() -> None:
    import threading

    from rpyc.core.stream import SocketStream

    from imap.worker.agent_link import send_linear
    a, b = socket.socketpair()
    stream = SocketStream(a)
    assert send_linear(stream) and send_linear(stream)   # once is enough
    data = os.urandom(5 * 2 ** 20 + 7)
    got = bytearray()

    def read() -> None:
        while len(got) < len(data):
            chunk = b.recv(1 << 20)
            if not chunk:
                return
            got.extend(chunk)

    reader = threading.Thread(target=read)
    reader.start()
    stream.write(data)
    reader.join(30)
    assert bytes(got) == data
    a.close()
    b.close()


@pytest.mark.parametrize("compress", [False, True])
def test_tuned_channels_carry_large_and_small_frames(compress) -> None:
    import threading

    from rpyc.core.channel import Channel
    from rpyc.core.stream import SocketStream

    from imap.worker.agent_link import recv_frame, send_linear
    frames = [os.urandom(n) for n in (0, 1, 63_999, 64_000, 3 * 2 ** 20 + 1, 5)]
    frames.append(bytes(2 ** 21))   # compressible

    def carried(tune_receiver: bool) -> list:
        """The frames as a tuned channel's peer (tuned or plain rpyc) reads them."""
        a, b = socket.socketpair()
        sender, receiver = Channel(SocketStream(a), compress), Channel(SocketStream(b))
        assert send_linear(sender.stream, sender)
        if tune_receiver:
            assert send_linear(receiver.stream, receiver)
        assert (type(receiver).recv is recv_frame) == tune_receiver
        got: list = []
        reader = threading.Thread(target=lambda: got.extend(receiver.recv() for _ in frames))
        reader.start()
        try:
            for frame in frames:
                sender.send(frame)
            reader.join(30)
        finally:
            sender.close()
            receiver.close()
        return got

    assert carried(tune_receiver=True) == frames
    # the wire format is rpyc's: a plain channel reads what a tuned one sends
    assert carried(tune_receiver=False) == frames


# -- large buffers cross attached ------------------------------------------------------------


@pytest.mark.parametrize("kind", ["imap", "classic"])
@pytest.mark.parametrize("compress", [False, True])
def test_large_buffers_cross_attached_unless_compressed(kind, compress) -> None:
    """Arrays of 64 KiB or more cross as attached frames both ways: what the
    worker and this process get are read-only views of the received buffer.
    With compression asked for they stay in the (compressed) pickle stream:
    writable copies. Exact either way, through a chain."""
    np = pytest.importorskip("numpy")
    big = [np.full(2 ** 20 // 8, float(i)) for i in range(6)]
    small = [np.full(100, float(i)) for i in range(6)]
    attached = not compress
    options = {"worker_type": "thread", "worker_num": 0,
               "remote_options": {"compress": compress}}
    with server(kind) as (addr, _):
        with IMap(worker_remote=[(addr, 2)], **options) as m:
            seen = m.add_task(h.writeable_and_sum, big + small)
            m.start()
            flags = list(seen)
        with IMap(worker_remote=[(addr, 2)], **options) as m:
            doubled = m.add_task(h.double, big)
            plus = m.add_task(h.inc, doubled)
            m.start()
            results = list(plus)
    assert flags == [(not attached, 2 ** 17 * float(i)) for i in range(6)] + [
        (True, 100 * float(i)) for i in range(6)]
    for i, r in enumerate(results):
        assert r.shape == (2 ** 17,) and r[0] == 2 * i + 1 and r[-1] == 2 * i + 1
        assert r.flags.writeable is not attached


def test_attached_frames_go_to_the_message_after_them() -> None:
    """Attached frames are read ahead of the message that takes them, in
    order, by the thread that reads the channel; a message that takes more
    than came is an error, not a hang."""
    import threading
    from types import SimpleNamespace

    from rpyc.core.channel import Channel
    from rpyc.core.stream import SocketStream

    from imap.transport.records import Attached, Payload
    from imap.worker.agent_link import (
        send_linear,
        take_attached,
        with_attached,
        write_attached,
    )
    a, b = socket.socketpair()
    sender, receiver = Channel(SocketStream(a)), Channel(SocketStream(b))
    assert send_linear(sender.stream, sender) and send_linear(receiver.stream, receiver)
    buffers = [os.urandom(3 * 2 ** 20 + 5), b"", os.urandom(70_000)]
    got: dict = {}

    def read() -> None:
        got["message"] = receiver.recv()
        got["data"] = with_attached(Attached(b"stream", 2).to_wire())
        got["last"] = take_attached(1)
        try:
            take_attached(1)
        except ValueError as exc:
            got["error"] = str(exc)
        got["next"] = receiver.recv()

    reader = threading.Thread(target=read)
    reader.start()
    try:
        conn = SimpleNamespace(_channel=sender, _sendlock=threading.Lock())
        write_attached(conn, buffers)
        sender.send(b"the message")
        sender.send(b"a message with nothing attached")
        reader.join(30)
    finally:
        sender.close()
        receiver.close()
    assert got["message"] == b"the message"
    assert Payload.from_wire(got["data"]) == Payload(b"stream", buffers[:2])
    assert got["last"] == buffers[2:]
    assert "takes 1 attached buffers; 0 came" in got["error"]
    assert got["next"] == b"a message with nothing attached"


def test_items_of_the_users_classes_carry_their_arrays_attached() -> None:
    """A class from the user's modules travels by value (cloudpickle); its
    large buffers are attached all the same."""
    np = pytest.importorskip("numpy")
    import worker_funcs as wf

    items = [wf.Holder(np.full(2 ** 17, float(i))) for i in range(4)]
    with server("classic") as (addr, _), \
            IMap(worker_type="thread", worker_num=0, worker_remote=[(addr, 2)]) as m:
        task = m.add_task(wf.holder_double, items)
        m.start()
        got = list(task)
    assert [(r[0], r[-1]) for r in got] == [(2.0 * i, 2.0 * i) for i in range(4)]
    assert not any(r.flags.writeable for r in got)


# -- rpyc's transport: tuned, or rpyc's own methods -------------------------------------------

TUNED = ("recv_frame", "send_frame_whole", "send_frame")
RPYC_OWN = ("recv", "send", "write")


@pytest.mark.parametrize("kind", ["imap", "classic"])
@pytest.mark.parametrize("tuning", ["tuned", "off"])
def test_the_round_trip_is_whole_on_both_transport_paths(kind, tuning, monkeypatch) -> None:
    """With the tuning turned off (the environment) both ends of every
    connection keep rpyc's own stream and channel methods; items, results
    and large frames cross whole either way, large arrays attached only
    when tuned."""
    np = pytest.importorskip("numpy")
    from imap.remote.connect import connect
    from imap.worker.agent_link import TUNING_ENV

    if tuning == "off":
        monkeypatch.setenv(TUNING_ENV, "off")
    else:
        monkeypatch.delenv(TUNING_ENV, raising=False)
    expected = TUNED if tuning == "tuned" else RPYC_OWN
    blobs = [os.urandom(3 * 2 ** 20 + k) for k in range(3)]
    arrays = [np.full(2 ** 17, float(i)) for i in range(4)] + [np.arange(50.0)]
    options = {"worker_type": "thread", "worker_num": 0}
    with server(kind) as (addr, _):
        host, port = addr.split(":")
        conn = connect(host, int(port))
        try:
            channel = conn._channel
            assert (type(channel).recv.__name__, type(channel).send.__name__,
                    type(channel.stream).write.__name__) == expected
            conn.namespace["imap_agent_nodelay"](tuning == "tuned")
            assert conn.eval("type(_serving_channel()).recv.__name__") == expected[0]
        finally:
            conn.close()
        got = []
        for func, items in [(_reverse, blobs), (h.writeable_and_sum, arrays),
                            (h.double, arrays), (h.inc, range(50)), (h.transport_here, range(4))]:
            with IMap(worker_remote=[(addr, 2)], **options) as m:
                task = m.add_task(func, items)
                if func is h.inc:   # a chain
                    task = m.add_task(h.inc, task)
                m.start()
                got.append(list(task))
    assert got[0] == [b[::-1] for b in blobs]
    attached = tuning == "tuned"
    assert got[1] == [(not attached, 2 ** 17 * float(i)) for i in range(4)] + [
        (True, float(arrays[4].sum()))]
    for a, r in zip(arrays, got[2], strict=True):
        assert (r == 2 * a).all()
        assert r.flags.writeable is not attached or r.nbytes < 2 ** 16
    assert got[3] == [x + 2 for x in range(50)]
    # the server's end of the backend's own connections
    assert {tuple(kind) for _, kinds in got[4] for kind in kinds} == {expected}


def _odd_stream(**attributes):
    from rpyc.core.stream import SocketStream

    return type("OddStream", (SocketStream,), {"__slots__": (), **attributes})


def _odd_channel(**attributes):
    from rpyc.core.channel import Channel

    return type("OddChannel", (Channel,), {"__slots__": (), **attributes})


@pytest.mark.parametrize(("stream_attrs", "channel_attrs", "named"), [
    ({"MAX_IO_CHUNK": "64k"}, {}, "MAX_IO_CHUNK"),
    ({"MAX_IO_CHUNK": 0}, {}, "MAX_IO_CHUNK"),
    ({}, {"FRAME_HEADER": __import__("struct").Struct("!QB")}, "FRAME_HEADER"),
    ({}, {"FRAME_HEADER": b"!LB"}, "FRAME_HEADER"),
    ({}, {"FLUSHER": "\n"}, "FLUSHER"),
    ({}, {"COMPRESSION_LEVEL": None}, "COMPRESSION_LEVEL"),
    ({}, {"COMPRESSION_THRESHOLD": 3e3}, "COMPRESSION_THRESHOLD"),
], ids=["chunk-str", "chunk-zero", "header-wide", "header-bytes", "flusher-str", "level",
        "threshold"])
def test_rpyc_internals_of_another_shape_leave_rpyc_methods(stream_attrs, channel_attrs, named,
                                                            monkeypatch, caplog) -> None:
    """An rpyc whose internals differ from what the tuning expects keeps its
    own methods: nothing is swapped, and one line says why (once)."""
    import logging

    from rpyc.core.channel import Channel
    from rpyc.core.stream import SocketStream

    from imap.worker import agent_link
    from imap.worker.agent_link import TUNING_ENV, rpyc_mismatch, send_linear

    monkeypatch.delenv(TUNING_ENV, raising=False)
    monkeypatch.setattr(agent_link, "_said", set())
    stream_cls = _odd_stream(**stream_attrs) if stream_attrs else SocketStream
    channel_cls = _odd_channel(**channel_attrs) if channel_attrs else Channel
    a, b = socket.socketpair()
    try:
        stream = stream_cls(a)
        channel = channel_cls(stream, False)
        assert named in rpyc_mismatch(stream, channel)
        with caplog.at_level(logging.DEBUG, logger="imap"):
            assert not send_linear(stream, channel)
            assert not send_linear(stream, channel)
        assert type(stream) is stream_cls and type(channel) is channel_cls
        lines = [r for r in caplog.records if "rpyc transport" in r.getMessage()]
        assert len(lines) == 1 and lines[0].levelno == logging.INFO
        assert named in lines[0].getMessage()
    finally:
        a.close()
        b.close()


def test_rpyc_internals_as_expected_are_tuned(monkeypatch) -> None:
    from rpyc.core.channel import Channel
    from rpyc.core.stream import SocketStream

    from imap.worker.agent_link import TUNING_ENV, rpyc_mismatch, send_linear

    monkeypatch.delenv(TUNING_ENV, raising=False)
    a, b = socket.socketpair()
    try:
        channel = Channel(SocketStream(a), False)
        assert rpyc_mismatch(channel.stream, channel) is None
        assert send_linear(channel.stream, channel)
        assert (type(channel).recv.__name__, type(channel).send.__name__,
                type(channel.stream).write.__name__) == TUNED
        monkeypatch.setenv(TUNING_ENV, "off")   # asked for: rpyc's own
        other = Channel(SocketStream(b), False)
        assert not send_linear(other.stream, other)
        assert type(other) is Channel and type(other.stream) is SocketStream
    finally:
        a.close()
        b.close()

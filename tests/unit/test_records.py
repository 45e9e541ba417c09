"""The records that cross between the parent and its workers.

The worker's end (imap.worker.kernel, imap.worker.agent_link) builds plain
tuples with a tag first; the parent's end (imap.transport.records) reads
them as NamedTuples of the same fields. Each kind goes to the wire and back
unchanged, and a record of an unknown tag is refused with an error naming it.
"""

from __future__ import annotations

import pickle
import subprocess
import sys
from types import SimpleNamespace

import cloudpickle
import pytest

from imap import UnmetDependency, UnsendableError, WorkerInitError, WorkerTraceback
from imap.backends.batch import Batch
from imap.remote.connect import AGENT_SOURCE
from imap.transport import records, wire
from imap.transport.records import (
    Answered,
    Attached,
    Failed,
    LinkAnswered,
    LinkRevoke,
    LinkRun,
    OutOfBand,
    PackedError,
    Payload,
    Submitted,
)
from imap.worker import agent_link, kernel

TASK = SimpleNamespace(id=1, key=("run", 1), name="square", func=abs)


def _batch(n: int) -> Batch:
    return Batch(TASK, list(range(n)), list(range(n)))


# -- the parent names the worker's fields, in the worker's order -----------------------------


def test_the_parents_records_have_the_kernels_fields_in_order():
    assert {kind.tag: kind._fields for kind in (Answered, Failed, OutOfBand)} == \
        kernel.REPLY_FIELDS
    assert PackedError._fields == kernel.ERROR_FIELDS
    assert Payload._fields == kernel.FRAMES_FIELDS
    assert Submitted._fields == kernel.SUBMITTED_FIELDS
    assert {kind.tag: kind._fields for kind in (LinkRun, LinkRevoke, LinkAnswered, Attached)} \
        == agent_link.LINK_FIELDS


# -- round trips ------------------------------------------------------------------------------


@pytest.mark.parametrize(("plain", "named"), [
    (kernel.answer_reply([1, None], {1: kernel.unsendable("x")}, 0.5, 0.25, True),
     Answered([1, None], {1: ("unsendable", "x", "", None)}, 0.5, 0.25, True)),
    (kernel.failed_reply(kernel.unmet("no GPU", "w1")),
     Failed(("unmet-dependency", "no GPU", "", "w1"))),
    (kernel.out_of_band_reply(b"stream", (("seg", 0, 10),)),
     OutOfBand(b"stream", (("seg", 0, 10),))),
], ids=["answer", "failed", "out-of-band"])
def test_each_reply_goes_to_the_wire_and_back(plain, named):
    assert records.reply_from_wire(plain) == named
    assert type(records.reply_from_wire(plain)) is type(named)
    assert named.to_wire() == plain
    assert type(named).from_wire(pickle.loads(pickle.dumps(plain))) == named


@pytest.mark.parametrize(("plain", "named"), [
    (agent_link.run_message(7, ("run", 2), b"func", b"items"),
     LinkRun(7, ("run", 2), b"func", b"items")),
    (agent_link.revoke_message(7), LinkRevoke(7)),
    (agent_link.answered_message(7, agent_link.attached_record(b"s", 2), None),
     LinkAnswered(7, ("attached", b"s", 2), None)),
], ids=["run", "revoke", "answered"])
def test_each_link_message_goes_to_the_wire_and_back(plain, named):
    assert records.link_from_wire(plain) == named
    assert named.to_wire() == plain
    assert type(named).from_wire(plain) == named


def test_an_attached_payload_goes_to_the_wire_and_back():
    plain = agent_link.attached_record(b"stream", 3)
    assert Attached.from_wire(plain) == Attached(b"stream", 3)
    assert Attached(b"stream", 3).to_wire() == plain


def test_a_payload_is_a_stream_alone_or_a_tagged_frames_record():
    frames = [bytearray(b"abc"), memoryview(b"de")]
    assert Payload.from_wire(b"stream") == Payload(b"stream", None)
    assert Payload(b"stream").to_wire() == b"stream"
    plain = kernel.frames_record(b"stream", frames)
    assert plain["tag"] == kernel.FRAMES
    assert Payload.from_wire(plain) == Payload(b"stream", frames)
    assert Payload(b"stream", frames).to_wire() == plain
    assert Payload(b"stream", frames).frame_bytes == 5 == kernel.frames_size(plain) - 6


def test_an_executor_tasks_record_goes_to_the_wire_and_back():
    plain = kernel.submitted_record([b"reply"], "process 7", None)
    assert Submitted.from_wire(plain) == Submitted([b"reply"], "process 7", None)
    assert Submitted([b"reply"], "process 7", None).to_wire() == plain


def test_each_kind_of_error_goes_to_the_wire_and_back():
    try:
        raise KeyError("k")
    except KeyError as exc:
        raised = kernel.pack_error(exc)
        init = kernel.pack_init_error(exc, abs)
    for plain in (raised, init, kernel.unsendable("an item", ValueError("v")),
                  kernel.unmet("no GPU", "w1")):
        error = PackedError.from_wire(plain)
        assert error.to_wire() == plain and error.kind == plain[0]
    assert PackedError.from_wire(raised).detail is not None   # the exception's pickle
    assert PackedError.from_wire(init).text == "abs"
    assert PackedError.from_wire(PackedError.from_wire(init).detail).kind == kernel.ERROR


# -- errors rebuilt from their records --------------------------------------------------------


def test_a_raised_error_is_rebuilt_with_its_worker_traceback():
    try:
        raise KeyError("k")
    except KeyError as exc:
        packed = kernel.pack_error(exc)
    exc = wire.unpack_error(packed)
    assert type(exc) is KeyError and exc.args == ("k",)
    assert isinstance(exc.__cause__, WorkerTraceback) and "KeyError" in str(exc.__cause__)


def test_an_error_without_a_pickle_is_unsendable():
    plain = kernel.error_record(kernel.ERROR, "Odd('x')", "the traceback")
    exc = wire.unpack_error(plain)
    assert type(exc) is UnsendableError and "could not be pickled" in str(exc)


def test_a_failed_initializer_names_it_and_its_error():
    exc = wire.unpack_error(kernel.pack_init_error(ValueError("no"), abs))
    assert type(exc) is WorkerInitError and "abs" in str(exc)
    assert type(exc.__cause__) is ValueError


def test_an_unmet_dependency_names_the_worker_that_refuses():
    exc = wire.unpack_error(kernel.unmet("no GPU", "process 12"))
    assert type(exc) is UnmetDependency and exc.whole and exc.worker == "process 12"


# -- a bad record is refused, named ------------------------------------------------------------


@pytest.mark.parametrize(("read", "plain", "named"), [
    (records.reply_from_wire, ("reply?", 1), "'reply?'"),
    (records.reply_from_wire, [kernel.ANSWER, [], None, 0.0, 0.0, False], "None"),
    (records.link_from_wire, ("frames", b"s", 1), "'frames'"),
    (Answered.from_wire, kernel.failed_reply(kernel.unsendable("x")), "'failed'"),
    (LinkRevoke.from_wire, agent_link.run_message(1, (), None, b""), "'run'"),
    (PackedError.from_wire, ("warning", "t", "", None), "'warning'"),
    (Payload.from_wire, {"tag": "shm", "stream": b"", "frames": []}, "'shm'"),
    (Payload.from_wire, {"stream": b"", "frames": []}, "None"),
    (Submitted.from_wire, [b"reply"], "None"),
], ids=["reply", "reply-list", "link", "answered", "revoke", "error", "payload",
        "payload-untagged", "submitted-untagged"])
def test_a_record_of_another_tag_is_refused_naming_the_tag(read, plain, named):
    with pytest.raises(ValueError, match="tag|kind") as info:
        read(plain)
    assert named in str(info.value)


def test_a_record_with_a_field_too_few_is_refused_naming_its_fields():
    with pytest.raises(ValueError, match=r"5 fields after its tag \(values, errors"):
        records.reply_from_wire((kernel.ANSWER, [], None, 0.0, 0.0))
    with pytest.raises(ValueError, match="4 fields"):
        PackedError.from_wire((kernel.ERROR, "text", "traceback"))


# -- a reply decoded for its batch ---------------------------------------------------------------


def test_a_failed_reply_fails_every_tasklet_of_the_batch():
    data = pickle.dumps(kernel.failed_reply(kernel.unsendable("the items")))
    answer = wire.decode_answer(_batch(3), data)
    assert answer.values == [None] * 3 and not answer.more
    assert sorted(answer.errors) == [0, 1, 2]
    assert all(type(e) is UnsendableError for e in answer.errors.values())
    assert len({id(e) for e in answer.errors.values()}) == 3   # one exception each


def test_an_answer_with_frames_counts_their_bytes_out_of_band():
    big = bytes(kernel.FRAME_BYTES)
    data = kernel.dumps_frames(kernel.answer_reply([pickle.PickleBuffer(big), 2], None, 0.5, 0.5))
    answer = wire.decode_answer(_batch(2), data)
    assert bytes(answer.values[0]) == big and answer.values[1] == 2
    assert answer.oob_bytes == len(big)
    assert answer.values[0].readonly   # a read-only view of the frame


def test_an_out_of_band_answer_reads_its_buffers_where_the_views_give_them():
    buffers: list = []
    big = b"x" * 100
    stream = pickle.dumps(kernel.answer_reply([pickle.PickleBuffer(big)], None, 0.1, 0.1),
                          5, buffer_callback=buffers.append)
    refs = (("segment", 0, len(big)),)
    data = pickle.dumps(kernel.out_of_band_reply(stream, refs))
    answer = wire.decode_answer(_batch(1), data, views=lambda r: [b.raw() for b in buffers])
    assert bytes(answer.values[0]) == bytes(big) and answer.oob_bytes == 100
    with pytest.raises(ValueError, match="out-of-band"):
        wire.decode_answer(_batch(1), data)


def test_a_batch_refused_by_the_kernel_comes_back_as_one_failed_reply():
    entry = (None, kernel.unsendable("the function was not received"))
    reply = pickle.loads(kernel.answer_batch(entry, None, pickle.dumps([1, 2])))
    assert records.reply_from_wire(reply) == Failed(entry[1])


# -- the agent uploaded: nothing of imap, and it reads its link records -----------------------


def test_the_uploaded_agent_imports_nothing_of_imap():
    code = ("import sys; sys.modules['imap'] = None\n"
            "namespace = {'__name__': 'uploaded'}\n"
            "exec(compile(sys.stdin.read(), 'agent', 'exec'), namespace)\n"
            "print(sorted(k for k in namespace if k.startswith('imap_agent_')))")
    done = subprocess.run([sys.executable, "-c", code], input=AGENT_SOURCE,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "'imap_agent_post'" in done.stdout and "'imap_agent_start'" in done.stdout


def test_the_agent_queues_a_run_and_gives_it_back_on_revoke():
    agent: dict = {"__name__": "uploaded"}
    exec(compile(AGENT_SOURCE, "agent", "exec"), agent)
    post = agent["imap_agent_post"]
    payload = cloudpickle.dumps((abs, (), {}))
    assert post(LinkRun(1, ("run", 0), payload, pickle.dumps([-1])).to_wire()) is None
    assert post(LinkRevoke(1).to_wire()) is True
    assert post(LinkRevoke(1).to_wire()) is False   # gone already
    with pytest.raises(ValueError, match="'answered'"):
        post(LinkAnswered(1, b"", None).to_wire())

"""``worker_remote`` is checked when the IMap is made: every malformed address,
port or worker count is a ``ValueError`` that names the value and the fix,
never a failure at ``start()`` or a silently different address."""

from __future__ import annotations

import ipaddress
import re
import socket
import subprocess
import sys

import cloudpickle
import pytest
import remote_helpers as h
from support import kill_group

from imap import IMap, imap
from imap.auth import DEFAULT_PORT
from imap.options import parse_address

cloudpickle.register_pickle_by_value(h)

pytestmark = pytest.mark.timeout(60)


def refused(worker_remote) -> str:
    """The message of the ValueError raised by the IMap constructor itself."""
    with pytest.raises(ValueError) as info:
        IMap(worker_num=0, worker_remote=worker_remote)
    message = str(info.value)
    assert message.startswith("worker_remote: ")
    return message


# --- the mistakes named in the issue -------------------------------------------------


@pytest.mark.parametrize("address", ["host:99999", "host:65536", "[::1]:70000"])
def test_port_above_65535_is_refused_not_wrapped(address):
    message = refused([(address, 1)])
    assert repr(address) in message and "1 to 65535" in message


@pytest.mark.parametrize("address", ["host:-5", "host:0", "host:", "host:http", "host:+80",
                                     "host:8o", "[::1]:"])
def test_port_that_is_not_1_to_65535_is_refused_at_construction(address):
    message = refused([(address, 1)])
    assert repr(address) in message and "1 to 65535" in message


@pytest.mark.parametrize("value", ["host:18812", b"host:18812"])
def test_a_single_string_is_refused_with_the_list_form_to_use(value):
    message = refused(value)
    assert repr(value) in message
    assert "list of (address, n) pairs" in message
    assert "worker_remote=[('host:18812', 2)]" in message


@pytest.mark.parametrize("address", ["[127.0.0.1", "[::1", "::1]:80", "127.0.0.1]",
                                     "[[::1]]", "[::1]]:80"])
def test_unbalanced_brackets_are_refused(address):
    message = refused([(address, 1)])
    assert repr(address) in message and "brackets" in message
    assert "'[::1]:18812'" in message


# --- other malformed addresses ---------------------------------------------------------


@pytest.mark.parametrize("address, words", [
    ("", "empty"),
    ("   ", "empty"),
    (":18812", "no host"),
    ("[]:18812", "no host"),
    ("[::1]18812", "only ':port' may follow"),
    ("host:1:2", "neither 'host:port' nor an IPv6 address"),
    (" host", "white space"),
    ("my host:1", "white space"),
])
def test_malformed_address_is_refused_naming_it(address, words):
    message = refused([(address, 1)])
    assert repr(address) in message and words in message


def test_address_that_is_not_a_str_is_refused():
    assert "must be a str" in refused([(18812, 1)])


def test_host_port_tuple_is_refused_with_the_string_to_write():
    message = refused([(("node1", 18812), 2)])
    assert "'node1:18812'" in message


# --- the shape of the list and the worker counts ----------------------------------------


@pytest.mark.parametrize("n", [0, -1, True, False, 2.0, "2", None])
def test_worker_count_must_be_an_int_of_at_least_one(n):
    message = refused([("host:18812", n)])
    assert "worker count of 'host:18812'" in message
    assert repr(n) in message and "int >= 1" in message


def test_address_without_a_count_is_refused_with_the_pair_to_write():
    message = refused(["host:18812"])
    assert "without a worker count" in message and "('host:18812', 2)" in message


@pytest.mark.parametrize("entry", [("host",), ("host", 1, 2), "ab", 7])
def test_entry_that_is_not_a_pair_is_refused(entry):
    assert "(address, n)" in refused([entry])


@pytest.mark.parametrize("value", [7, {"host:18812": 2}])
def test_worker_remote_that_is_not_a_list_of_pairs_is_refused(value):
    assert "list of (address, n) pairs" in refused(value)


def test_one_imap_function_checks_worker_remote_too():
    with pytest.raises(ValueError, match="1 to 65535"):
        imap(h.inc, [1], worker_num=0, worker_remote=[("host:99999", 1)])


# --- the forms that are accepted --------------------------------------------------------


@pytest.mark.parametrize("address, host, port", [
    ("node1", "node1", DEFAULT_PORT),
    ("node1:1", "node1", 1),
    ("node1.example.org:65535", "node1.example.org", 65535),
    ("127.0.0.1", "127.0.0.1", DEFAULT_PORT),
    ("127.0.0.1:18861", "127.0.0.1", 18861),
    ("[::1]", "::1", DEFAULT_PORT),
    ("[::1]:18861", "::1", 18861),
    ("[fe80::1%eth0]:80", "fe80::1%eth0", 80),
    ("::1", "::1", DEFAULT_PORT),
    ("2001:db8::7", "2001:db8::7", DEFAULT_PORT),
])
def test_accepted_address_is_kept_and_read_as_meant(address, host, port):
    m = IMap(worker_num=0, worker_remote=[(address, 3)])
    assert m.worker_remote == [(address, 3)]
    assert parse_address(address) == (host, port)


def test_entries_may_be_lists_and_the_list_any_iterable():
    m = IMap(worker_num=1, worker_type="thread",
             worker_remote=iter([["a:1", 1], ("b", 2)]))
    assert m.worker_remote == [("a:1", 1), ("b", 2)]


def test_an_ip_address_object_is_taken_as_its_text():
    m = IMap(worker_num=0, worker_remote=[(ipaddress.ip_address("127.0.0.1"), 1)])
    assert m.worker_remote == [("127.0.0.1", 1)]


@pytest.mark.parametrize("value", [None, [], ()])
def test_no_remote_workers(value):
    m = IMap(worker_num=1, worker_type="thread", worker_remote=value)
    assert m.worker_remote == []


def _ipv6_loopback() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback on this machine")
def test_server_on_ipv6_loopback_is_reached_by_its_bracketed_address():
    env = dict(h.os.environ, PYTHONPATH=str(h.ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "imap.server", "--host", "::1", "--port", "0"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, env=env,
                            start_new_session=True)
    try:
        # The server prints its address in the form worker_remote takes.
        pattern = re.compile(r"listening on (\[::1\]:\d+)\n")
        address = h._read_until(proc.stdout, pattern, 30).group(1)
        results = imap(h.inc, range(4), worker_num=0, worker_remote=[(address, 2)])
        assert list(results) == [1, 2, 3, 4]
    finally:
        kill_group(proc)
        proc.stdout.close()

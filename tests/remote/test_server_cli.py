"""imap-server's command line: a bad value is a usage error naming it and the fix,
before anything listens."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import cloudpickle
import pytest
import remote_helpers as h
from remote_helpers import server
from support import kill_group

from imap import imap

cloudpickle.register_pickle_by_value(h)

pytestmark = pytest.mark.timeout(60)


def _run_server(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(h.ROOT))
    # start_new_session: a server that wrongly starts is killed by run() on timeout
    return subprocess.run([sys.executable, "-m", "imap.server", *args], env=env,
                          capture_output=True, text=True, timeout=30,
                          start_new_session=True)


@pytest.mark.parametrize("value", ["99999", "65536", "-1", "http"])
def test_port_out_of_range_is_a_usage_error(value):
    proc = _run_server("--port", value)
    assert proc.returncode == 2, proc.stderr
    assert f"argument --port: {value!r} is not a port" in proc.stderr
    assert "from 1 to 65535 (0 picks a free one)" in proc.stderr


@pytest.mark.parametrize("value", ["-1", "0", "nan", "inf", "soon"])
def test_auth_timeout_not_positive_is_a_usage_error(value):
    proc = _run_server("--auth-timeout", value)
    assert proc.returncode == 2, proc.stderr
    assert f"argument --auth-timeout: {value!r}" in proc.stderr
    assert "give seconds > 0" in proc.stderr


@pytest.mark.parametrize("value", ["0", "-3", "many"])
def test_max_pending_below_one_is_a_usage_error(value):
    proc = _run_server("--max-pending", value)
    assert proc.returncode == 2, proc.stderr
    assert f"argument --max-pending: {value!r} is not a count" in proc.stderr


@pytest.mark.parametrize("value, fix", [
    ("127.0.0.1:80", "--host 127.0.0.1 --port 80"),
    ("localhost:8080", "--host localhost --port 8080"),
    ("[::1]:80", "--host ::1 --port 80"),
])
def test_host_with_a_port_is_a_usage_error_naming_the_flags(value, fix):
    proc = _run_server("--host", value)
    assert proc.returncode == 2, proc.stderr
    assert f"--host {value}: give the address without a port ({fix})" in proc.stderr
    assert "non-loopback" not in proc.stderr


def test_host_with_colons_that_is_no_ipv6_address_is_a_usage_error():
    proc = _run_server("--host", "a:b:c")
    assert proc.returncode == 2, proc.stderr
    assert "--host a:b:c is neither a host name nor an IP address" in proc.stderr


def test_empty_secret_file_is_a_usage_error(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text(" \n")
    proc = _run_server("--secret-file", str(secret))
    assert proc.returncode == 2, proc.stderr
    assert f"--secret-file {secret}: the shared secret is empty" in proc.stderr


def test_port_in_use_is_an_error_naming_the_address_not_a_traceback():
    with server("imap") as (address, _):
        port = address.rsplit(":", 1)[1]
        proc = _run_server("--port", port)
    assert proc.returncode == 1, proc.stderr
    assert f"imap-server: cannot listen on 127.0.0.1:{port}" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("host", ["::1", "[::1]"])
def test_ipv6_host_with_or_without_brackets_listens(host):
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    env = dict(os.environ, PYTHONPATH=str(h.ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "imap.server", "--host", host, "--port",
                             "0"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        line = proc.stdout.readline().decode()
        if not line and b"cannot listen" in proc.stderr.read():
            pytest.skip("no IPv6 loopback on this machine")
        assert line.startswith("imap-server listening on [::1]:"), line
        address = line.split()[-1]
        assert list(imap(h.inc, range(3), worker_num=0, worker_remote=[(address, 1)])) == [
            1, 2, 3]
    finally:
        kill_group(proc)
        proc.stdout.close()
        proc.stderr.close()

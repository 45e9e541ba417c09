"""imap-server over TLS, with client certificates required, against real subprocesses.

Certificates are made in the test with the ``openssl`` command line tool.
"""

from __future__ import annotations

import shutil
import subprocess

import cloudpickle
import pytest
import remote_helpers as h
from remote_helpers import server
from support import wait_until

from imap import IMap

cloudpickle.register_pickle_by_value(h)

pytestmark = [
    pytest.mark.timeout(90),
    pytest.mark.skipif(shutil.which("openssl") is None,
                       reason="the openssl command line tool is needed to make certificates"),
]


def _openssl(*args: str, cwd) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _signed(name: str, cn: str, ext: str, cwd) -> None:
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key",
             "-out", f"{name}.csr", "-subj", f"/CN={cn}", cwd=cwd)
    (cwd / f"{name}.ext").write_text(ext + "\n")
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", f"{name}.pem", "-days", "2",
             "-extfile", f"{name}.ext", cwd=cwd)


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("certs")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key",
             "-out", "ca.pem", "-days", "2", "-subj", "/CN=imap test CA", cwd=d)
    _signed("server", "127.0.0.1", "subjectAltName=IP:127.0.0.1", d)
    _signed("client", "imap client", "extendedKeyUsage=clientAuth", d)
    return d


@pytest.fixture(scope="module")
def tls_server(certs):
    args = ("--certfile", str(certs / "server.pem"), "--keyfile", str(certs / "server.key"),
            "--ca-certs", str(certs / "ca.pem"))
    with server("imap", args) as (addr, _):
        yield addr


def _client(certs, with_cert: bool = True) -> dict:
    options = {"ssl_ca_certs": str(certs / "ca.pem")}
    if with_cert:
        options.update(ssl_certfile=str(certs / "client.pem"),
                       ssl_keyfile=str(certs / "client.key"))
    return options


def _start(address: str, options: dict, tmp_path) -> IMap:
    m = IMap(worker_num=0, worker_remote=[(address, 2)], remote_options=options)
    m.add_task(h.touch, range(3), args=(str(tmp_path),))
    m.start()
    return m


def test_tls_with_client_certificate_runs(tls_server, certs, tmp_path):
    m = _start(tls_server, _client(certs), tmp_path)
    assert list(m) == [0, 1, 2]
    m.stop()
    assert len(list(tmp_path.glob("marker-*"))) == 3


def test_tls_without_client_certificate_is_refused(tls_server, certs, tmp_path):
    with pytest.raises(ConnectionError, match=tls_server):
        _start(tls_server, _client(certs, with_cert=False), tmp_path)
    assert not list(tmp_path.glob("marker-*"))


def test_plain_client_against_tls_server_is_refused(tls_server, tmp_path):
    with pytest.raises(ConnectionError, match=tls_server):
        _start(tls_server, {}, tmp_path)
    assert not list(tmp_path.glob("marker-*"))


def test_stock_rpyc_client_against_tls_server_executes_nothing(tls_server, tmp_path):
    import rpyc

    marker = tmp_path / "raw-marker"
    host, port = tls_server.split(":")
    with pytest.raises((EOFError, OSError)):
        conn = rpyc.classic.connect(host, int(port))
        try:
            conn.execute(f"open({str(marker)!r}, 'w').close()")
        finally:
            conn.close()
    assert not marker.exists()


def test_tls_client_verifies_the_server(certs, tmp_path):
    """A client trusting another CA refuses the server."""
    other = tmp_path / "other"
    other.mkdir()
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key",
             "-out", "ca.pem", "-days", "2", "-subj", "/CN=other CA", cwd=other)
    args = ("--certfile", str(certs / "server.pem"), "--keyfile", str(certs / "server.key"))
    with server("imap", args) as (addr, _):
        with pytest.raises(ConnectionError, match=addr):
            _start(addr, {"ssl_ca_certs": str(other / "ca.pem")}, tmp_path)
        m = _start(addr, {"ssl_ca_certs": str(certs / "ca.pem")}, tmp_path)
        assert list(m) == [0, 1, 2]
        m.stop()


def test_tls_and_secret_together(certs, tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("tls-and-secret")
    args = ("--certfile", str(certs / "server.pem"), "--keyfile", str(certs / "server.key"),
            "--secret-file", str(secret), "--auth-timeout", "2")
    with server("imap", args) as (addr, _):
        m = _start(addr, {"ssl": True, "secret": "tls-and-secret"}, tmp_path)
        assert list(m) == [0, 1, 2]
        m.stop()
        for marker in tmp_path.glob("marker-*"):
            marker.unlink()
        with pytest.raises(ConnectionError, match=addr):
            _start(addr, {"ssl": True, "secret": "wrong"}, tmp_path)
        with pytest.raises(ConnectionError, match=addr):
            _start(addr, {"ssl": True}, tmp_path)
        assert not list(tmp_path.glob("marker-*"))


def test_idle_connections_that_never_start_tls_cost_no_process(certs, tmp_path):
    """TLS is negotiated in the server's main process too: a connection that
    never sends its hello waits there, up to the cap, without a process."""
    import socket

    from remote_helpers import children_of

    args = ("--certfile", str(certs / "server.pem"), "--keyfile", str(certs / "server.key"),
            "--auth-timeout", "60", "--max-pending", "3")
    with server("imap", args) as (addr, proc):
        host, port = addr.split(":")
        idle = [socket.create_connection((host, int(port)), timeout=30) for _ in range(5)]
        try:
            # The server says nothing to a connection waiting for TLS; the two
            # beyond the cap are closed, so all five have been accepted.
            assert [sock.recv(1) for sock in idle[3:]] == [b"", b""]
            assert children_of(proc.pid) == set()
        finally:
            for sock in idle:
                sock.close()
        # Their slots are free once the server has read their ends.
        results: list = []

        def admitted() -> bool:
            try:
                m = _start(addr, {"ssl": True}, tmp_path)
            except ConnectionError:
                return False
            results.append(list(m))
            m.stop()
            return True

        wait_until(admitted, 30, "a TLS client to be admitted after the idle ones left")
        assert results == [[0, 1, 2]]


def test_connections_through_tls_that_say_nothing_cost_no_process(certs, tmp_path):
    """Without a secret, TLS alone does not get a connection its process: it
    waits for the client's first request, and is closed after the timeout
    without one."""
    import socket
    import ssl

    from remote_helpers import children_of

    log = tmp_path / "server.log"
    args = ("--certfile", str(certs / "server.pem"), "--keyfile", str(certs / "server.key"),
            "--auth-timeout", "1", "--log-level", "INFO")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(str(certs / "ca.pem"))
    with server("imap", args, log=log) as (addr, proc):
        host, port = addr.split(":")
        quiet = []
        try:
            for _ in range(5):
                sock = socket.create_connection((host, int(port)), timeout=30)
                quiet.append(context.wrap_socket(sock, server_hostname=host))   # TLS done
            for sock in quiet:   # closed by the server once the timeout is over
                try:
                    assert sock.recv(1) == b""
                except (ConnectionError, ssl.SSLError):   # closed without TLS's goodbye
                    pass
            assert children_of(proc.pid) == set()
        finally:
            for sock in quiet:
                sock.close()
    text = log.read_text()
    assert text.count("not through the gate within 1 s") == 5
    assert "forking its process" not in text


def test_large_buffers_cross_tls_attached_and_whole(tls_server, certs):
    """Attached frames (large buffers beside the pickle) go through TLS like
    the rest, both ways, whole: frames of several MiB and of odd sizes."""
    np = pytest.importorskip("numpy")
    items = [np.arange(n, dtype=np.float64) for n in (3 * 2 ** 19 + 3, 2 ** 17, 5_000)]
    options = {"worker_type": "thread", "worker_num": 0, "worker_remote": [(tls_server, 2)],
               "remote_options": _client(certs)}
    with IMap(**options) as m:
        seen = m.add_task(h.writeable_and_sum, items)
        m.start()
        flags = list(seen)
    with IMap(**options) as m:
        doubled = m.add_task(h.double, items)
        m.start()
        results = list(doubled)
    assert flags == [(False, float(a.sum())) for a in items[:2]] + [(True, float(items[2].sum()))]
    for a, r in zip(items, results, strict=True):
        assert (r == 2 * a).all()

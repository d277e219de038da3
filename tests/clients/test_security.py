"""redis-py with a password, with protected mode, and over TLS (throwaway certificates from openssl)."""

import socket
import subprocess

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

# redis-py retries connection errors (authentication failures included) with
# backoff; these tests expect the failure itself.
NO_RETRY = Retry(NoBackoff(), 0)

from conftest import Instance, free_port


@pytest.mark.parametrize("protocol", [2, 3])
def test_password(protocol):
    inst = Instance("--requirepass", "s3cret")
    try:
        anonymous = redis.Redis(host=inst.host, port=inst.port, protocol=2, retry=NO_RETRY)
        with pytest.raises(redis.AuthenticationError):
            anonymous.ping()
        wrong = redis.Redis(host=inst.host, port=inst.port, protocol=protocol, password="nope", retry=NO_RETRY)
        with pytest.raises(redis.AuthenticationError):
            wrong.ping()
        good = redis.Redis(host=inst.host, port=inst.port, protocol=protocol, password="s3cret")
        assert good.ping()
        assert good.set("k", "v")
        with good.lock("resource", timeout=5):
            assert good.exists("resource")
        named = redis.Redis(host=inst.host, port=inst.port, protocol=protocol, username="default", password="s3cret")
        assert named.get("k") == b"v"
    finally:
        inst.stop()


def test_protected_mode_refuses_a_non_local_source():
    inst = Instance("--bind", "0.0.0.0")
    try:
        s = socket.socket()
        s.bind(("127.0.0.2", 0))  # loopback, but not 127.0.0.1: remote to Redis's rule
        s.connect(("127.0.0.1", inst.port))
        s.sendall(b"PING\r\n")
        assert s.recv(100).startswith(b"-DENIED Redis is running in protected mode")
        s.close()
        assert redis.Redis(host="127.0.0.1", port=inst.port).ping()
    finally:
        inst.stop()


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("pki")

    def run(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=tmp_path)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "1", "-subj", "/CN=test-ca")
    for name in ("server", "client"):
        run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}")
        (tmp_path / f"{name}.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", f"{name}.pem", "-days", "1", "-extfile", f"{name}.ext")
    return tmp_path


@pytest.mark.parametrize("protocol", [2, 3])
def test_tls(pki, protocol):
    tls_port = free_port()
    inst = Instance("--tls-port", str(tls_port), "--tls-cert-file", str(pki / "server.pem"),
                    "--tls-key-file", str(pki / "server.key"))
    try:
        r = redis.Redis(host="127.0.0.1", port=tls_port, ssl=True, ssl_ca_certs=str(pki / "ca.pem"), protocol=protocol)
        assert r.ping()
        assert r.set("k", "tls")
        with r.lock("resource", timeout=5):
            pass
        assert redis.Redis(host=inst.host, port=inst.port).get("k") == b"tls"
    finally:
        inst.stop()


def test_mutual_tls(pki):
    tls_port = free_port()
    inst = Instance("--tls-port", str(tls_port), "--tls-cert-file", str(pki / "server.pem"),
                    "--tls-key-file", str(pki / "server.key"), "--tls-ca-cert-file", str(pki / "ca.pem"))
    try:
        ok = redis.Redis(host="127.0.0.1", port=tls_port, ssl=True, ssl_ca_certs=str(pki / "ca.pem"),
                         ssl_certfile=str(pki / "client.pem"), ssl_keyfile=str(pki / "client.key"))
        assert ok.ping()
        anonymous = redis.Redis(host="127.0.0.1", port=tls_port, ssl=True, ssl_ca_certs=str(pki / "ca.pem"), retry=NO_RETRY)
        with pytest.raises(redis.ConnectionError):
            anonymous.ping()
    finally:
        inst.stop()

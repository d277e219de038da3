"""redis-py 8 against redlockd, on RESP2 and RESP3: commands, pipelines, transactions, WATCH."""

import pytest
import redis

from conftest import wait_until


@pytest.fixture(params=[2, 3], ids=["resp2", "resp3"])
def r(request, server):
    client = redis.Redis(host=server.host, port=server.port, protocol=request.param, decode_responses=True)
    yield client
    client.close()


def test_handshake_and_connection_commands(r):
    assert r.ping() is True
    assert r.echo("hi") == "hi"
    assert r.client_setname("worker-1") is True
    assert r.client_getname() == "worker-1"
    assert isinstance(r.client_id(), int)
    info = r.client_info()
    assert info["name"] == "worker-1"
    assert any(c["name"] == "worker-1" for c in r.client_list())
    assert r.info()["redis_version"] == "8.4.0"
    assert "redlockd_version" in r.info("server")
    assert r.config_get("appendonly") == {"appendonly": "no"}
    assert r.config_get("save") == {"save": ""}
    seconds, micros = r.time()
    assert seconds > 1_700_000_000 and 0 <= micros < 1_000_000
    assert r.select(1) is True or r.select(1) == "OK"


def test_strings(r):
    assert r.set("k", "v") is True
    assert r.get("k") == "v"
    assert r.set("k", "w", nx=True) is None
    assert r.set("k", "w", xx=True, get=True) == "v"
    assert r.set("k", "x", ex=100) is True
    assert 99 <= r.ttl("k") <= 100
    assert r.set("k", "y", keepttl=True) is True
    assert r.ttl("k") > 0
    assert r.set("k", "z", px=100_000) is True
    assert r.setnx("n", "1") is True
    assert r.setnx("n", "1") is False
    assert r.setex("se", 100, "v") is True
    assert r.psetex("pse", 100_000, "v") is True
    assert r.getset("k", "new") == "z"
    assert r.getdel("k") == "new"
    assert r.get("k") is None
    assert r.mset({"a": "1", "b": "2"}) is True
    assert r.mget("a", "b", "c") == ["1", "2", None]
    assert r.msetnx({"a": "x", "z": "y"}) is False
    assert r.incr("ctr") == 1
    assert r.incrby("ctr", 10) == 11
    assert r.decr("ctr") == 10
    assert r.decrby("ctr", 5) == 5
    assert r.incrbyfloat("f", 1.5) == 1.5
    assert r.append("s", "hello") == 5
    assert r.strlen("s") == 5
    assert r.getrange("s", 1, 3) == "ell"
    assert r.setrange("s", 5, " world") == 11
    assert r.get("s") == "hello world"
    assert r.getex("s", px=50_000) == "hello world"
    assert r.pttl("s") > 0
    assert r.getex("s", persist=True) == "hello world"
    assert r.ttl("s") == -1
    with pytest.raises(redis.ResponseError, match="not an integer"):
        r.incr("s")


def test_keys_and_expiry(r):
    r.mset({"k1": "1", "k2": "2", "other": "3"})
    assert r.exists("k1", "k2", "nope") == 2
    assert r.type("k1") == "string"
    assert sorted(r.keys("k*")) == ["k1", "k2"]
    assert sorted(r.scan_iter(match="k*", count=2)) == ["k1", "k2"]
    assert r.randomkey() in {"k1", "k2", "other"}
    assert r.dbsize() == 3
    assert r.rename("k1", "k3") is True
    assert r.renamenx("k3", "k2") is False
    assert r.touch("k2", "k3") == 2
    assert r.expire("k2", 100) is True
    assert r.expire("k2", 50, gt=True) is False
    assert r.pexpire("k2", 200_000, gt=True) is True
    assert r.expiretime("k2") > 0
    assert r.pexpiretime("k2") > 0
    assert r.persist("k2") is True
    assert r.ttl("k2") == -1
    assert r.pexpire("k3", 30) is True
    assert wait_until(lambda: r.exists("k3") == 0)
    assert r.delete("k2", "other", "nope") == 2
    assert r.unlink("nope") == 0
    assert r.flushdb() is True
    assert r.dbsize() == 0


def test_pipelines_with_and_without_transactions(r):
    with r.pipeline(transaction=True) as p:
        p.set("a", 1).incr("a").get("a")
        assert p.execute() == [True, 2, "2"]
    with r.pipeline(transaction=False) as p:
        for i in range(100):
            p.incr("b")
        assert p.execute()[-1] == 100
    with r.pipeline(transaction=True) as p:
        p.set("c", "x").incr("c")
        results = p.execute(raise_on_error=False)
        assert results[0] is True
        assert isinstance(results[1], redis.ResponseError)


def test_watch_conflict(server, r):
    other = redis.Redis(host=server.host, port=server.port, decode_responses=True)
    r.set("w", 0)
    with r.pipeline() as p:
        p.watch("w")
        current = int(p.get("w"))
        other.set("w", 42)
        p.multi()
        p.set("w", current + 1)
        with pytest.raises(redis.WatchError):
            p.execute()
    assert r.get("w") == "42"

    def increment(pipe):
        value = int(pipe.get("w"))
        pipe.multi()
        pipe.set("w", value + 1)

    r.transaction(increment, "w")
    assert r.get("w") == "43"
    other.close()


def test_native_lock_commands_through_redis_py_8(r):
    assert r.set("lock", "tok", nx=True, px=10_000) is True
    assert r.set("lock", "tok", ifeq="tok", px=20_000) is True
    assert r.set("lock", "x", ifeq="not-mine") is None
    assert r.get("lock") == "tok"
    assert r.digest("lock") == r.digest_local("tok")
    assert r.set("lock", "tok2", ifdeq=r.digest_local("tok")) is True
    assert r.delex("lock", ifne="tok2") == 0
    assert r.delex("lock", ifdeq=r.digest_local("tok2")) == 1
    assert r.digest("lock") is None
    r.set("bin", b"\x00\xffraw")
    assert r.digest("bin") == r.digest_local(b"\x00\xffraw")

"""python-redis-lock (redis_lock) against redlockd: acquire and release,
a blocking acquire woken by a release, auto_renewal, extend, reset,
reset_all, and two processes contending on one counter.

The library releases, extends and resets with its own Lua scripts (none of
them in redlockd's catalogue: unlock 90da91872223f85eb1376a17e3c4df21ace8c54b,
extend fed16109024d968d9496e4140fe1355bac05ebff, reset
afbc8014508f92e446b56567e8ba600e811c1bd5, reset_all
b121d3548d693116c3851b63befe947e49f28c7c) and waits with BLPOP on a signal
list. Tests that need what the server does not offer (Lua, with `--lua no`
or a build without it; BLPOP) are skipped, each naming what it misses; any
other error in those probes fails the test."""

import multiprocessing
import threading
import time

import pytest
import redis
import redis_lock

from conftest import wait_until

SCRIPTS = (
    "python-redis-lock's Lua scripts (unlock 90da9187, extend fed16109, reset afbc8014, "
    "reset_all b121d354) are not catalogued and this build runs no other script (--lua no)"
)
LIBRARY_SCRIPTS = (
    redis_lock.UNLOCK_SCRIPT,
    redis_lock.EXTEND_SCRIPT,
    redis_lock.RESET_SCRIPT,
    redis_lock.RESET_ALL_SCRIPT,
)


def runs_lua(r):
    """Whether the server runs the library's own scripts. Only the refusal of
    an uncatalogued script (a build or a server without Lua) skips; any other
    error is a failure of the test, not a reason to skip it."""
    try:
        for script in LIBRARY_SCRIPTS:
            r.script_load(script)
    except redis.ResponseError as e:
        if "unsupported script" in str(e) or "unknown command" in str(e):
            return False
        raise
    # Unlock and extend by a stranger: both answer 1 and change nothing.
    assert r.eval(redis_lock.UNLOCK_SCRIPT, 2, "lock:probe", "lock-signal:probe", "nobody", 100) == 1
    assert r.eval(redis_lock.EXTEND_SCRIPT, 1, "lock:probe", "nobody", 10) == 1
    return True


def has_blpop(r):
    """Whether the server knows BLPOP; only an unknown command skips."""
    try:
        assert r.blpop("lock-signal:probe", 0.01) is None
        return True
    except redis.ResponseError as e:
        if "unknown command" in str(e):
            return False
        raise


def need(r, lua=False, blpop=False):
    missing = []
    if lua and not runs_lua(r):
        missing.append(SCRIPTS)
    if blpop and not has_blpop(r):
        missing.append("BLPOP is not implemented (blocking list commands)")
    if missing:
        pytest.skip("; ".join(missing))


@pytest.fixture
def client(server):
    r = redis.StrictRedis(host=server.host, port=server.port)
    yield r
    r.close()


def test_acquire_is_a_set_nx_ex_and_a_second_holder_is_refused(client):
    lock = redis_lock.Lock(client, "printer", expire=30)
    assert lock.acquire(blocking=False)
    assert lock.locked()
    assert lock.get_owner_id() == lock.id
    assert 29 <= client.ttl("lock:printer") <= 30
    rival = redis_lock.Lock(client, "printer", expire=30)
    assert not rival.acquire(blocking=False)
    with pytest.raises(redis_lock.AlreadyAcquired):
        lock.acquire(blocking=False)
    # The key is a string: lists and the rest of the keyspace leave it alone.
    assert client.type("lock:printer") == b"string"
    client.delete("lock:printer")
    assert rival.acquire(blocking=False)


def test_acquire_and_release(client):
    need(client, lua=True)
    lock = redis_lock.Lock(client, "printer", expire=30)
    assert lock.acquire(blocking=False)
    lock.release()
    assert not lock.locked()
    # The release signals waiters: one element on the signal list, expiring.
    assert client.lrange("lock-signal:printer", 0, -1) == [b"1"]
    assert 0 < client.pttl("lock-signal:printer") <= 1000
    with pytest.raises(redis_lock.NotAcquired):
        lock.release()
    with redis_lock.Lock(client, "printer", expire=30):
        assert client.exists("lock:printer")
    assert not client.exists("lock:printer")


def test_blocking_acquire_is_woken_by_the_release(client):
    need(client, lua=True, blpop=True)
    holder = redis_lock.Lock(client, "queue", expire=60)
    assert holder.acquire()
    got = []

    def waiter():
        r = redis.StrictRedis(host=client.connection_pool.connection_kwargs["host"],
                              port=client.connection_pool.connection_kwargs["port"])
        lock = redis_lock.Lock(r, "queue", expire=60)
        started = time.monotonic()
        assert lock.acquire(blocking=True, timeout=30)
        got.append(time.monotonic() - started)
        lock.release()
        r.close()

    t = threading.Thread(target=waiter)
    t.start()
    time.sleep(0.3)
    assert not got, "the waiter must wait while the lock is held"
    holder.release()
    t.join(timeout=10)
    assert got, "the waiter acquired"
    # Woken by the release's signal, far sooner than its 30 s timeout.
    assert got[0] < 5, got


def test_auto_renewal_keeps_the_lock(client):
    need(client, lua=True)
    lock = redis_lock.Lock(client, "renewed", expire=2, auto_renewal=True)
    assert lock.acquire(blocking=False)
    time.sleep(3.5)
    assert lock.get_owner_id() == lock.id, "renewed past its 2 s expiry"
    assert client.ttl("lock:renewed") > 0
    lock.release()
    assert not client.exists("lock:renewed")


def test_extend(client):
    need(client, lua=True)
    lock = redis_lock.Lock(client, "extended", expire=10)
    assert lock.acquire(blocking=False)
    lock.extend(100)
    assert 99 <= client.ttl("lock:extended") <= 100
    forever = redis_lock.Lock(client, "forever")
    assert forever.acquire(blocking=False)
    with pytest.raises(redis_lock.NotExpirable):
        forever.extend(10)
    stranger = redis_lock.Lock(client, "extended", expire=10, id="not-the-owner")
    with pytest.raises(redis_lock.NotAcquired):
        stranger.extend(10)
    lock.release()
    forever.release()


def test_reset_and_reset_all(client):
    need(client, lua=True)
    a = redis_lock.Lock(client, "a", expire=60)
    assert a.acquire(blocking=False)
    redis_lock.Lock(client, "a").reset()
    assert not client.exists("lock:a")
    assert client.lrange("lock-signal:a", 0, -1) == [b"1"]
    for name in ("x", "y", "z"):
        assert redis_lock.Lock(client, name, expire=60).acquire(blocking=False)
    client.set("unrelated", "kept")
    redis_lock.reset_all(client)
    assert client.keys("lock:*") == []
    assert client.get("unrelated") == b"kept"


def _count(host, port, rounds, results):
    r = redis.StrictRedis(host=host, port=port)
    for _ in range(rounds):
        with redis_lock.Lock(r, "counter", expire=30):
            value = int(r.get("count") or 0)
            r.set("count", value + 1)
    results.put(rounds)
    r.close()


def test_two_processes_contending_on_one_counter_end_exact(client, server):
    need(client, lua=True, blpop=True)
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    rounds = 100
    procs = [ctx.Process(target=_count, args=(server.host, server.port, rounds, results)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert sum(results.get(timeout=5) for _ in procs) == 2 * rounds
    assert int(client.get("count")) == 2 * rounds
    assert wait_until(lambda: not client.exists("lock:counter"))

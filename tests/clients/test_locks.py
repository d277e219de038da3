"""Lock libraries' full lifecycle against redlockd: acquire, contend, extend,
release, release by a non-owner, expiry."""

import asyncio
import threading
import time

import pytest
import redis
import redis.asyncio
from redis.exceptions import LockError, LockNotOwnedError

from conftest import wait_until


@pytest.mark.parametrize("protocol", [2, 3])
def test_redis_py_lock(server, protocol):
    r = redis.Redis(host=server.host, port=server.port, protocol=protocol)
    lock = r.lock("resource", timeout=10)
    assert lock.acquire(blocking=False)
    rival = r.lock("resource", timeout=10)
    assert not rival.acquire(blocking=False)
    assert lock.owned() and lock.locked()
    assert lock.extend(5)
    assert 14_000 < r.pttl("resource") <= 15_000
    assert lock.extend(20, replace_ttl=True)
    assert 19_000 < r.pttl("resource") <= 20_000
    assert lock.reacquire()
    # A non-owner holding some other token: the server must refuse it.
    rival.local.token = b"not-the-owner"
    with pytest.raises(LockNotOwnedError):
        rival.release()
    rival.local.token = b"not-the-owner"
    with pytest.raises(LockNotOwnedError):
        rival.extend(5)
    lock.release()
    assert not r.exists("resource")
    with pytest.raises(LockError):
        lock.release()
    # Expiry: a short lock lapses, someone else takes it, the old owner cannot release.
    short = r.lock("short", timeout=0.05)
    assert short.acquire(blocking=False)
    taker = r.lock("short", timeout=10)
    assert taker.acquire(blocking=True, blocking_timeout=5)
    with pytest.raises(LockNotOwnedError):
        short.release()
    taker.release()
    r.close()


@pytest.mark.parametrize("protocol", [2, 3])
def test_redis_py_asyncio_lock(server, protocol):
    async def scenario():
        r = redis.asyncio.Redis(host=server.host, port=server.port, protocol=protocol)
        lock = r.lock("aresource", timeout=10)
        assert await lock.acquire(blocking=False)
        rival = r.lock("aresource", timeout=10)
        assert not await rival.acquire(blocking=False)
        assert await lock.extend(5)
        assert await lock.reacquire()
        rival.local.token = b"not-the-owner"
        with pytest.raises(LockNotOwnedError):
            await rival.release()
        await lock.release()
        assert not await r.exists("aresource")
        short = r.lock("ashort", timeout=0.05)
        assert await short.acquire(blocking=False)
        await asyncio.sleep(0.1)
        with pytest.raises(LockNotOwnedError):
            await short.release()
        await r.aclose()

    asyncio.run(scenario())


def test_redis_py_lock_mutual_exclusion(server):
    """Threads incrementing a plain counter under redis-py's Lock lose no update."""
    r = redis.Redis(host=server.host, port=server.port)
    r.set("counter", 0)
    overlaps = []
    inside = threading.Lock()

    def worker():
        c = redis.Redis(host=server.host, port=server.port)
        for _ in range(25):
            with c.lock("mutex", timeout=10, blocking_timeout=30, sleep=0.001):
                if not inside.acquire(blocking=False):
                    overlaps.append(1)
                value = int(c.get("counter"))
                c.set("counter", value + 1)
                inside.release()
        c.close()

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not overlaps
    assert int(r.get("counter")) == 150
    r.close()


def test_pottery_redlock(servers):
    from pottery import Redlock
    from pottery.exceptions import ExtendUnlockedLock, ReleaseUnlockedLock

    masters = {redis.Redis(host=s.host, port=s.port) for s in servers}
    lock = Redlock(key="printer", masters=masters, auto_release_time=10)
    assert lock.acquire(blocking=False)
    rival = Redlock(key="printer", masters=masters, auto_release_time=10)
    assert not rival.acquire(blocking=False)
    assert 0 < lock.locked() <= 10
    lock.extend()
    with pytest.raises(ReleaseUnlockedLock):
        rival.release()
    lock.release()
    assert not lock.locked()
    with pytest.raises((ExtendUnlockedLock, ReleaseUnlockedLock)):
        lock.extend()
    short = Redlock(key="short", masters=masters, auto_release_time=0.05)
    assert short.acquire(blocking=False)
    time.sleep(0.1)
    assert not short.locked()
    with pytest.raises(ReleaseUnlockedLock):
        short.release()
    for m in masters:
        m.close()


def test_pottery_counter_under_redlock(servers):
    """The counter example with pottery's Redlock over 5 instances: no lost update."""
    from pottery import Redlock

    store = redis.Redis(host=servers[0].host, port=servers[0].port)
    store.set("counter", 0)
    masters = {redis.Redis(host=s.host, port=s.port) for s in servers}

    def worker():
        for _ in range(20):
            lock = Redlock(key="counter-lock", masters=masters, auto_release_time=10)
            with lock:
                value = int(store.get("counter"))
                store.set("counter", value + 1)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert int(store.get("counter")) == 80


def test_pottery_nextid(servers):
    from pottery import NextID

    masters = {redis.Redis(host=s.host, port=s.port) for s in servers}
    ids = NextID(key="tickets", masters=masters)
    first = next(ids)
    second = next(ids)
    assert second == first + 1


def test_redlock_py(servers):
    from redlock import Redlock

    dlm = Redlock([{"host": s.host, "port": s.port, "db": 0} for s in servers], retry_count=1)
    lock = dlm.lock("resource", 10_000)
    assert lock
    assert dlm.lock("resource", 10_000) is False
    dlm.unlock(lock)
    again = dlm.lock("resource", 10_000)
    assert again
    dlm.unlock(again)
    # Expiry frees the resource.
    short = dlm.lock("short", 50)
    assert short
    assert wait_until(lambda: dlm.lock("short", 10_000))


def test_aioredlock(server):
    from aioredlock import Aioredlock, LockError as AioLockError

    async def scenario():
        manager = Aioredlock([{"host": server.host, "port": server.port}], retry_count=1)
        lock = await manager.lock("resource", lock_timeout=10)
        assert lock.valid
        assert await manager.is_locked("resource")
        with pytest.raises(AioLockError):
            await manager.lock("resource", lock_timeout=10)
        await manager.extend(lock, lock_timeout=20)
        got = await manager.get_active_locks()
        assert any(l.resource == "resource" for l in got)
        await manager.unlock(lock)
        assert not await manager.is_locked("resource")
        await manager.destroy()

    asyncio.run(scenario())


def test_scripts_by_text_hash_to_the_catalogue(server):
    """redis-py's own script texts, sent with EVAL and SCRIPT LOAD, are recognised by their SHA1."""
    from redis.lock import Lock

    r = redis.Redis(host=server.host, port=server.port)
    sha = r.script_load(Lock.LUA_RELEASE_SCRIPT)
    assert sha == "c3f8721cbb97f72bc19e972846bd7aaf91901658"
    r.set("k", "tok")
    assert r.eval(Lock.LUA_RELEASE_SCRIPT, 1, "k", "other") == 0
    assert r.eval(Lock.LUA_RELEASE_SCRIPT, 1, "k", "tok") == 1
    # Any other script runs on the embedded Lua.
    assert r.eval("return 1", 0) == 1
    with pytest.raises(redis.exceptions.NoScriptError):
        r.evalsha("f" * 40, 0)

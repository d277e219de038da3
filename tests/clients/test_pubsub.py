"""redis-py's PubSub against redlockd: sync and asyncio, RESP2 and RESP3,
get_message/listen with a publisher, patterns, keyspace notifications and
the __lock__ channel."""

import asyncio
import threading
import time

import pytest
import redis
import redis.asyncio


def next_message(p, timeout=5.0):
    """The next message (not a subscribe confirmation), or None."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = p.get_message(ignore_subscribe_messages=True, timeout=0.1)
        if m is not None:
            return m
    return None


@pytest.mark.parametrize("protocol", [2, 3])
def test_sync_get_message_and_patterns(server, protocol):
    r = redis.Redis(host=server.host, port=server.port, protocol=protocol)
    p = r.pubsub()
    p.subscribe("news")
    p.psubscribe("sport.*")
    confirmations = [p.get_message(timeout=2), p.get_message(timeout=2)]
    assert [c["type"] for c in confirmations] == ["subscribe", "psubscribe"]
    assert confirmations[1]["data"] == 2
    assert r.pubsub_numsub("news") == [(b"news", 1)]
    assert r.pubsub_numpat() == 1
    assert r.pubsub_channels() == [b"news"]
    assert r.publish("news", "hello") == 1
    m = next_message(p)
    assert m == {"type": "message", "pattern": None, "channel": b"news", "data": b"hello"}
    assert r.publish("sport.tennis", b"\x00ace\xff") == 1
    m = next_message(p)
    assert m == {"type": "pmessage", "pattern": b"sport.*", "channel": b"sport.tennis", "data": b"\x00ace\xff"}
    # In RESP2 the connection is in subscriber mode; PING still answers.
    p.ping()
    pong = p.get_message(timeout=2)
    assert pong["type"] == "pong"
    p.unsubscribe("news")
    p.punsubscribe()
    # UNSUBSCRIBE is sent without waiting for its reply: read both
    # confirmations first, or the PUBLISH (another connection) may overtake it.
    unsubscribed = [p.get_message(timeout=2), p.get_message(timeout=2)]
    assert [c["type"] for c in unsubscribed] == ["unsubscribe", "punsubscribe"]
    assert r.publish("news", "nobody") == 0
    p.close()


@pytest.mark.parametrize("protocol", [2, 3])
def test_sync_listen_with_a_publisher_thread(server, protocol):
    r = redis.Redis(host=server.host, port=server.port, protocol=protocol)
    p = r.pubsub(ignore_subscribe_messages=True)
    p.subscribe("jobs")
    assert p.get_message(timeout=2) is None  # the confirmation, ignored

    def publish():
        pub = redis.Redis(host=server.host, port=server.port)
        for i in range(100):
            pub.publish("jobs", str(i))
        pub.publish("jobs", "stop")

    t = threading.Thread(target=publish)
    t.start()
    got = []
    for m in p.listen():
        if m["data"] == b"stop":
            break
        got.append(int(m["data"]))
    t.join()
    assert got == list(range(100))
    p.close()


@pytest.mark.parametrize("protocol", [2, 3])
def test_sync_handlers_in_a_thread_and_sharded(server, protocol):
    r = redis.Redis(host=server.host, port=server.port, protocol=protocol)
    seen = []
    p = r.pubsub()
    p.subscribe(**{"events": lambda m: seen.append(m["data"])})
    worker = p.run_in_thread(sleep_time=0.01)
    try:
        deadline = time.monotonic() + 5
        while r.pubsub_numsub("events") != [(b"events", 1)] and time.monotonic() < deadline:
            time.sleep(0.01)
        for word in (b"a", b"b", b"c"):
            r.publish("events", word)
        deadline = time.monotonic() + 5
        while len(seen) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert seen == [b"a", b"b", b"c"]
    finally:
        worker.stop()
        worker.join(timeout=5)
        p.close()
    s = r.pubsub()
    s.ssubscribe("shard")
    assert s.get_sharded_message(timeout=2)["type"] == "ssubscribe"
    assert r.spublish("shard", "x") == 1
    deadline = time.monotonic() + 5
    m = None
    while m is None and time.monotonic() < deadline:
        m = s.get_sharded_message(ignore_subscribe_messages=True, timeout=0.1)
    assert m["type"] == "smessage" and m["data"] == b"x"
    s.close()


@pytest.mark.parametrize("protocol", [2, 3])
def test_keyspace_notifications(server, protocol):
    r = redis.Redis(host=server.host, port=server.port, protocol=protocol)
    r.config_set("notify-keyspace-events", "KEA")
    assert r.config_get("notify-keyspace-events") == {"notify-keyspace-events": "AKE"}
    p = r.pubsub(ignore_subscribe_messages=True)
    p.psubscribe("__keyspace@0__:user:*")
    p.subscribe("__keyevent@0__:expired")
    p.get_message(timeout=2)
    r.set("user:1", "x", px=50)
    r.incr("user:2")
    r.delete("user:1")
    events = [next_message(p)["data"] for _ in range(4)]
    assert events == [b"set", b"expire", b"incrby", b"del"]
    r.set("user:3", "y", px=30)
    assert [next_message(p)["data"] for _ in range(2)] == [b"set", b"expire"]
    expired = [next_message(p) for _ in range(2)]
    assert {(m["channel"], m["data"]) for m in expired} == {
        (b"__keyspace@0__:user:3", b"expired"),
        (b"__keyevent@0__:expired", b"user:3"),
    }
    p.close()


@pytest.mark.parametrize("protocol", [2, 3])
def test_asyncio_pubsub(server, protocol):
    async def scenario():
        r = redis.asyncio.Redis(host=server.host, port=server.port, protocol=protocol)
        p = r.pubsub(ignore_subscribe_messages=True)
        await p.subscribe("a")
        await p.psubscribe("b*")
        await p.get_message(timeout=1)
        await p.get_message(timeout=1)

        async def reader():
            got = []
            async for m in p.listen():
                if m["data"] == b"stop":
                    return got
                got.append((m["type"], m["channel"], m["data"]))

        task = asyncio.create_task(reader())
        await asyncio.sleep(0.05)
        assert await r.publish("a", "1") == 1
        assert await r.publish("bee", "2") == 1
        await r.publish("a", "stop")
        got = await asyncio.wait_for(task, 5)
        assert got == [("message", b"a", b"1"), ("pmessage", b"bee", b"2")]
        await p.unsubscribe()
        await p.punsubscribe()
        await p.aclose()
        await r.aclose()

    asyncio.run(scenario())


# The README's leader-election watcher, verbatim.
def watch_leader(r: redis.Redis, name: str):
    """Yield (leader or None, fence) each time the election's leadership changes."""
    p = r.pubsub(ignore_subscribe_messages=True)
    p.subscribe(f"__lock__:election:{name}")          # subscribe first, then read:
    info = r.execute_command("LOCK.INFO", f"election:{name}")  # no change is missed
    if info:
        info = dict(zip(info[::2], info[1::2])) if isinstance(info, list) else info
        yield info[b"token"].decode(), info[b"fence"]
    else:
        yield None, None
    for m in p.listen():
        event, token, *rest = m["data"].decode().split(" ")
        if event == "acquired":
            yield token, int(rest[0])
        elif event in ("released", "expired"):
            yield None, None                           # vacant until the next grant


@pytest.mark.parametrize("protocol", [2, 3])
def test_readme_leader_watch(server, protocol):
    r = redis.Redis(host=server.host, port=server.port, protocol=protocol)
    first = r.execute_command("LOCK.ACQUIRE", "election:db-primary", "node-a", "PX", 80)
    changes = watch_leader(r, "db-primary")
    assert next(changes) == ("node-a", first)
    assert next(changes) == (None, None)  # node-a did not renew: expired
    second = r.execute_command("LOCK.ACQUIRE", "election:db-primary", "node-b", "PX", 10000)
    assert next(changes) == ("node-b", second)
    r.execute_command("LOCK.RELEASE", "election:db-primary", "node-b")
    assert next(changes) == (None, None)


def test_lock_events_and_leader_watch(server):
    """The README's recipe: watch `__lock__:election:NAME` to learn who leads."""
    r = redis.Redis(host=server.host, port=server.port, decode_responses=True)
    p = r.pubsub(ignore_subscribe_messages=True)
    p.subscribe("__lock__:election:db")
    p.get_message(timeout=2)
    fence = r.execute_command("LOCK.ACQUIRE", "election:db", "node-a", "PX", 100)
    assert next_message(p)["data"] == f"acquired node-a {fence}"
    assert r.execute_command("LOCK.EXTEND", "election:db", "node-a", "PX", 60) == 1
    assert next_message(p)["data"].startswith("extended node-a ")
    # node-a stops renewing: the lock expires and watchers hear it at once.
    assert next_message(p, timeout=3)["data"] == "expired node-a"
    fence_b = r.execute_command("LOCK.ACQUIRE", "election:db", "node-b", "PX", 10000)
    assert fence_b > fence
    assert next_message(p)["data"] == f"acquired node-b {fence_b}"
    assert r.execute_command("LOCK.RELEASE", "election:db", "node-b") == 1
    assert next_message(p)["data"] == "released node-b"
    p.close()

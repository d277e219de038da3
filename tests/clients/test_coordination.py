"""redis-py against redlockd's blocking primitives: mutual exclusion with
LOCK.ACQUIRE ... WAIT (no retry loop), the leader-election recipe, and
semaphores, on RESP2 and RESP3."""

import threading
import uuid

import pytest
import redis


@pytest.mark.parametrize("protocol", [2, 3])
def test_blocking_acquire_gives_mutual_exclusion_without_retries(server, protocol):
    """8 threads increment one counter with GET and SET under a blocking
    lock: each acquire is one command that returns once the lock is theirs,
    so the count is exact and nobody polls."""
    threads, rounds = 8, 25
    errors = []

    def worker():
        r = redis.Redis(host=server.host, port=server.port, protocol=protocol)
        token = uuid.uuid4().hex
        try:
            for _ in range(rounds):
                fence = r.execute_command("LOCK.ACQUIRE", "counter:lock", token, "PX", 10000, "WAIT", 0)
                assert isinstance(fence, int)
                value = int(r.get("counter") or 0)
                r.set("counter", value + 1)
                assert r.execute_command("LOCK.RELEASE", "counter:lock", token) == 1
        except Exception as e:  # reported by the main thread
            errors.append(e)
        finally:
            r.close()

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(timeout=60)
    assert not errors, errors
    r = redis.Redis(host=server.host, port=server.port)
    assert int(r.get("counter")) == threads * rounds
    stats = r.info("stats")
    assert stats["total_commands_processed"] < threads * rounds * 6, "no retry loop"
    r.close()


def test_leader_election_recipe(server):
    """Candidates block on the election lock; the leader renews it and
    everyone learns who leads with LOCK.HOLDER. When the leader goes away
    (its connection closes: ONCLOSE), the next candidate in line leads."""
    def connect():
        return redis.Redis(host=server.host, port=server.port, decode_responses=True)

    leader = connect()
    assert isinstance(leader.execute_command("LOCK.ACQUIRE", "election:svc", "node-a", "PX", 5000, "WAIT", 0, "ONCLOSE"), int)
    follower = connect()
    elected = []

    def campaign():
        fence = follower.execute_command("LOCK.ACQUIRE", "election:svc", "node-b", "PX", 5000, "WAIT", 0, "ONCLOSE")
        elected.append(fence)

    t = threading.Thread(target=campaign)
    t.start()
    observer = connect()
    token, fence, pttl = observer.execute_command("LOCK.HOLDER", "election:svc")
    assert token == "node-a" and 0 < pttl <= 5000
    assert leader.execute_command("LOCK.EXTEND", "election:svc", "node-a", "PX", 5000) == 1
    leader.close()  # the leader process dies
    t.join(timeout=10)
    assert elected and elected[0] > fence
    assert observer.execute_command("LOCK.HOLDER", "election:svc")[0] == "node-b"
    follower.close()
    observer.close()


@pytest.mark.parametrize("protocol", [2, 3])
def test_semaphore_admits_at_most_its_limit(server, protocol):
    r = redis.Redis(host=server.host, port=server.port, protocol=protocol)
    for i in range(3):
        assert isinstance(r.execute_command("SEM.ACQUIRE", "pool", f"t{i}", "LIMIT", 3, "PX", 10000), int)
    assert r.execute_command("SEM.ACQUIRE", "pool", "t3", "LIMIT", 3, "PX", 10000) is None
    info = r.execute_command("SEM.INFO", "pool")
    if protocol == 2:
        info = dict(zip(info[::2], info[1::2]))
    assert info[b"limit"] == 3 and len(info[b"holders"]) == 3 and info[b"waiters"] == 0
    assert r.execute_command("SEM.RELEASE", "pool", "t0") == 1
    assert isinstance(r.execute_command("SEM.ACQUIRE", "pool", "t3", "LIMIT", 3, "PX", 10000, "WAIT", 1000), int)
    r.close()

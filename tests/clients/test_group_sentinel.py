"""redis-py's Sentinel, pointed at the client ports of a replicated group,
finds the leader (the group's master) and follows a failover after the
leader is killed with SIGKILL; blocking acquires through every node of the
group give mutual exclusion."""

import threading
import time
import uuid

import pytest
import redis
from redis.exceptions import ConnectionError, TimeoutError
from redis.sentinel import MasterNotFoundError, Sentinel

from conftest import Instance, free_port, wait_until


@pytest.fixture
def group(tmp_path):
    raft_ports = [free_port() for _ in range(3)]
    peers = ",".join(f"{i + 1}@127.0.0.1:{p}" for i, p in enumerate(raft_ports))
    nodes = []
    try:
        for i, port in enumerate(raft_ports):
            nodes.append(
                Instance(
                    "--dir", str(tmp_path / f"node{i + 1}"),
                    "--raft-id", str(i + 1),
                    "--raft-port", str(port),
                    "--raft-peers", peers,
                    "--raft-heartbeat-ms", "100",
                    "--raft-election-timeout-ms", "500",
                )
            )  # fmt: skip
        yield nodes
    finally:
        for n in nodes:
            n.stop()


def discover(sentinel):
    try:
        return sentinel.discover_master("redlockd")
    except MasterNotFoundError:
        return None


def role(addr):
    try:
        return redis.Redis(host=addr[0], port=int(addr[1]), socket_timeout=1.0).execute_command("ROLE")[0]
    except (ConnectionError, TimeoutError):
        return None


def write(master, key, value):
    try:
        return master.set(key, value)
    except (ConnectionError, TimeoutError):
        return False


# redis-py 8 speaks RESP3 by default, where Sentinel's instance states are maps.
@pytest.mark.parametrize("protocol", [2, 3])
def test_sentinel_finds_the_leader_and_follows_a_failover(group, protocol):
    sentinel = Sentinel(
        [(n.host, n.port) for n in group],
        socket_timeout=1.0,
        sentinel_kwargs={"protocol": protocol, "socket_timeout": 1.0},
        protocol=protocol,
    )
    # Right after the start an election may still move the leadership: wait
    # until the node SENTINEL names agrees that it is the master.
    leader_addr = wait_until(
        lambda: (a := discover(sentinel)) and role(a) == b"master" and a, timeout=20, step=0.1
    )
    assert leader_addr, "no master found through SENTINEL"
    leader = next(n for n in group if (n.host, n.port) == (leader_addr[0], int(leader_addr[1])))

    master = sentinel.master_for("redlockd", socket_timeout=3.0, protocol=protocol)
    assert master.set("k", "before")
    assert master.get("k") == b"before"

    leader.stop()  # SIGKILL
    started = time.monotonic()
    new_addr = wait_until(
        lambda: (a := discover(sentinel)) and a != leader_addr and a, timeout=20, step=0.1
    )
    assert new_addr, "SENTINEL never named a new master"
    # The same master_for client follows: it reconnects to the new leader.
    assert wait_until(lambda: write(master, "k", "after"), timeout=20, step=0.1)
    assert master.get("k") == b"after"
    assert time.monotonic() - started < 20
    new_leader = next(n for n in group if (n.host, n.port) == (new_addr[0], int(new_addr[1])))
    assert new_leader is not leader
    assert role(new_addr) == b"master"


def counter_on_every_node(group, counter, rounds, locked_increment, threads=6, protocol=2):
    """`threads` threads, spread over the group's nodes, each doing
    `rounds` of `locked_increment(r, token)`: an increment of `counter`
    under some lock. Once a leader is known; the counter must end exact on
    every node."""
    sentinel = Sentinel([(n.host, n.port) for n in group], sentinel_kwargs={"socket_timeout": 1.0})
    assert wait_until(lambda: (a := discover(sentinel)) and role(a) == b"master", timeout=20, step=0.1)
    errors = []

    def worker(node):
        r = redis.Redis(host=node.host, port=node.port, socket_timeout=20, protocol=protocol)
        token = uuid.uuid4().hex
        try:
            for _ in range(rounds):
                locked_increment(r, token)
        except Exception as e:  # reported by the main thread
            errors.append(e)
        finally:
            r.close()

    pool = [threading.Thread(target=worker, args=(group[i % len(group)],)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(timeout=60)
    assert not errors, errors
    for node in group:
        r = redis.Redis(host=node.host, port=node.port)
        assert int(r.get(counter)) == threads * rounds
        r.close()


@pytest.mark.parametrize("protocol", [2, 3])
def test_blocking_acquire_on_every_node_gives_mutual_exclusion(group, protocol):
    """Threads on every node increment one counter with GET and SET under
    LOCK.ACQUIRE ... WAIT 0: the waiters queue at the leader whichever node
    they talk to, so the count is exact and nobody retries."""

    def locked_increment(r, token):
        fence = r.execute_command("LOCK.ACQUIRE", "counter:lock", token, "PX", 10000, "WAIT", 0)
        assert isinstance(fence, int)
        r.set("counter", int(r.get("counter") or 0) + 1)
        assert r.execute_command("LOCK.RELEASE", "counter:lock", token) == 1

    counter_on_every_node(group, "counter", 15, locked_increment, protocol=protocol)


def test_python_redis_lock_on_every_node(group):
    """python-redis-lock's Lock (its scripts by EVALSHA, its blocking
    acquire a BLPOP on a signal list) from threads on every node: EVALSHA
    goes to the log as EVAL, the BLPOP waits at the leader, and the counter
    ends exact on every node."""
    import redis_lock

    def locked_increment(r, _token):
        with redis_lock.Lock(r, "prl", expire=60):
            r.set("prl:count", int(r.get("prl:count") or 0) + 1)

    started = time.monotonic()
    counter_on_every_node(group, "prl:count", 10, locked_increment)
    # Every release signalled the next waiter: nobody sat out a lock's
    # 60 s expiry (the run takes well under a second when they do).
    assert time.monotonic() - started < 30

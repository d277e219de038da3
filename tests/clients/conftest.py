"""Start the real redlockd binary on free loopback ports for client-library tests."""

import os
import subprocess
import threading

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BINARY = os.environ.get("REDLOCKD_BIN", os.path.join(ROOT, "target", "release", "redlockd"))


class Instance:
    """One redlockd process; stopped by `stop()` (the fixtures always call it)."""

    def __init__(self, *args):
        self.proc = subprocess.Popen(
            [BINARY, "--port", "0", "--log-level", "warning", *args],
            stdout=subprocess.PIPE,
            stderr=None,
            text=True,
        )
        line = []
        reader = threading.Thread(target=lambda: line.append(self.proc.stdout.readline()))
        reader.start()
        reader.join(timeout=10)
        if not line or "listening on" not in line[0]:
            self.stop()
            raise RuntimeError(f"redlockd did not start: {line!r}")
        self.port = int(line[0].strip().rsplit(":", 1)[1])
        self.host = "127.0.0.1"

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)


@pytest.fixture
def server():
    inst = Instance()
    yield inst
    inst.stop()


@pytest.fixture
def servers():
    """Five independent instances, as a Redlock deployment would have."""
    insts = [Instance() for _ in range(5)]
    yield insts
    for i in insts:
        i.stop()


def free_port():
    """A free loopback port (bound and released)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout=5.0, step=0.01):
    """Poll `predicate` until true or `timeout` seconds pass; its last value."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(step)

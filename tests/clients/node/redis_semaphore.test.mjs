// redis-semaphore (pinned in package.json) on ioredis against real redlockd
// instances: Mutex and RedlockMutex, Semaphore, MultiSemaphore and
// RedlockSemaphore over 3 instances, each with a contended counter that
// must end exact. REDLOCKD_BIN names the binary (default: release build).
//
// Mutex runs on SET NX PX and two catalogued scripts. The semaphores
// acquire and refresh with Lua scripts that are not in redlockd's
// catalogue (Semaphore acquire 43ebdb49…, refresh 999a49a1…;
// MultiSemaphore acquire 10c1c2e0…, refresh 2327bcdc…, release 0bd1010c…):
// their tests are skipped, naming them, while the server runs no other
// script, and run as soon as it does.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import path from "node:path";
import { fileURLToPath } from "node:url";
import Redis from "ioredis";
import { Mutex, Semaphore, MultiSemaphore, RedlockMutex, RedlockSemaphore } from "redis-semaphore";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
const binary = process.env.REDLOCKD_BIN ?? path.join(root, "target/release/redlockd");

const SEMAPHORE_SCRIPTS =
  "redis-semaphore's semaphore scripts (Semaphore acquire 43ebdb49, refresh 999a49a1; " +
  "MultiSemaphore acquire 10c1c2e0, refresh 2327bcdc, release 0bd1010c) are not catalogued " +
  "and this build runs no other script";

/** Start one instance on a free port; resolves to { port, stop }. */
function startInstance() {
  return new Promise((resolve, reject) => {
    const child = spawn(binary, ["--port", "0", "--log-level", "warning"], { stdio: ["ignore", "pipe", "inherit"] });
    const timer = setTimeout(() => { child.kill("SIGKILL"); reject(new Error("redlockd did not start")); }, 10_000);
    const lines = createInterface({ input: child.stdout });
    lines.once("line", (line) => {
      clearTimeout(timer);
      const port = Number(line.trim().split(":").pop());
      resolve({
        port,
        stop: () => new Promise((done) => { child.once("exit", done); child.kill("SIGKILL"); }),
      });
    });
    child.once("error", reject);
  });
}

/** `n` instances, and `perWorker` sets of clients to them (one per worker). */
async function withInstances(n, workers, body) {
  const instances = await Promise.all(Array.from({ length: n }, startInstance));
  const connect = () => instances.map((i) => new Redis({ host: "127.0.0.1", port: i.port, maxRetriesPerRequest: 1 }));
  const clientSets = Array.from({ length: workers }, connect);
  try {
    await body(clientSets);
  } finally {
    for (const set of clientSets) for (const c of set) c.disconnect();
    await Promise.all(instances.map((i) => i.stop()));
  }
}

async function runsLua(client) {
  try {
    return (await client.eval("return 1", 0)) === 1;
  } catch {
    return false;
  }
}

const fast = { lockTimeout: 5_000, acquireTimeout: 20_000, retryInterval: 2, refreshInterval: 1_000 };
/** For a rival expected to fail: tryAcquire waits out acquireTimeout. */
const once = { ...fast, acquireTimeout: 100 };

/** Workers each take `makeLock(clients)` `rounds` times and increment a
 * counter by GET then SET inside it: the counter ends exact only if the
 * lock excluded every other worker. */
async function contend(clientSets, makeLock, rounds) {
  const counter = clientSets[0][0];
  await counter.set("count", 0);
  await Promise.all(clientSets.map(async (clients) => {
    for (let i = 0; i < rounds; i++) {
      const lock = makeLock(clients);
      await lock.acquire();
      const value = Number(await clients[0].get("count"));
      await new Promise((r) => setImmediate(r));
      await clients[0].set("count", value + 1);
      await lock.release();
    }
  }));
  assert.equal(Number(await counter.get("count")), clientSets.length * rounds);
}

test("Mutex: acquire, exclusion, refresh, release, contended counter", async () => {
  await withInstances(1, 3, async (clientSets) => {
    const [[a], [b]] = clientSets;
    const m = new Mutex(a, "printer", { ...fast, lockTimeout: 1_000, refreshInterval: 300 });
    await m.acquire();
    assert.ok(m.isAcquired);
    const rival = new Mutex(b, "printer", once);
    assert.equal(await rival.tryAcquire(), false);
    // Refreshed past its 1 s timeout.
    await new Promise((r) => setTimeout(r, 1_500));
    assert.ok(m.isAcquired);
    assert.equal(await a.get("mutex:printer"), m.identifier);
    await m.release();
    assert.equal(await a.exists("mutex:printer"), 0);
    assert.ok(await rival.tryAcquire());
    await rival.release();
    await contend(clientSets, ([c]) => new Mutex(c, "counter", fast), 50);
  });
});

test("RedlockMutex over 3 instances: contended counter", async () => {
  await withInstances(3, 3, async (clientSets) => {
    await contend(clientSets, (clients) => new RedlockMutex(clients, "counter", fast), 30);
  });
});

test("Semaphore: a limit of 2, release, contended counter with a limit of 1", async (t) => {
  await withInstances(1, 3, async (clientSets) => {
    const [[a], [b], [c]] = clientSets;
    if (!(await runsLua(a))) return t.skip(SEMAPHORE_SCRIPTS);
    const s1 = new Semaphore(a, "pool", 2, fast);
    const s2 = new Semaphore(b, "pool", 2, fast);
    const s3 = new Semaphore(c, "pool", 2, once);
    await s1.acquire();
    await s2.acquire();
    assert.equal(await s3.tryAcquire(), false);
    assert.equal(await a.zcard("semaphore:pool"), 2);
    await s1.release();
    assert.ok(await s3.tryAcquire());
    await s2.release();
    await s3.release();
    assert.equal(await a.exists("semaphore:pool"), 0);
    await contend(clientSets, ([cl]) => new Semaphore(cl, "counter", 1, fast), 30);
  });
});

test("MultiSemaphore: permits, release, contended counter", async (t) => {
  await withInstances(1, 3, async (clientSets) => {
    const [[a], [b]] = clientSets;
    if (!(await runsLua(a))) return t.skip(SEMAPHORE_SCRIPTS);
    const big = new MultiSemaphore(a, "pool", 5, 3, fast);
    const small = new MultiSemaphore(b, "pool", 5, 3, once);
    await big.acquire();
    assert.equal(await small.tryAcquire(), false);
    assert.equal(await a.zcard("semaphore:pool"), 3);
    await big.release();
    assert.ok(await small.tryAcquire());
    await small.release();
    await contend(clientSets, ([cl]) => new MultiSemaphore(cl, "counter", 4, 3, fast), 30);
  });
});

test("RedlockSemaphore over 3 instances: contended counter", async (t) => {
  await withInstances(3, 3, async (clientSets) => {
    if (!(await runsLua(clientSets[0][0]))) return t.skip(SEMAPHORE_SCRIPTS);
    const holder = new RedlockSemaphore(clientSets[0], "pool", 1, fast);
    await holder.acquire();
    assert.equal(await new RedlockSemaphore(clientSets[1], "pool", 1, once).tryAcquire(), false);
    await holder.release();
    await contend(clientSets, (clients) => new RedlockSemaphore(clients, "counter", 1, fast), 20);
  });
});

// npm redlock v5 on ioredis against real redlockd instances: acquire,
// contend, extend, release, release by a non-owner, expiry, and using()'s
// automatic extension. REDLOCKD_BIN names the binary (default: release build).
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import path from "node:path";
import { fileURLToPath } from "node:url";
import Redis from "ioredis";
import Redlock, { ExecutionError } from "redlock";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
const binary = process.env.REDLOCKD_BIN ?? path.join(root, "target/release/redlockd");

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

async function withInstances(n, body) {
  const instances = await Promise.all(Array.from({ length: n }, startInstance));
  const clients = instances.map((i) => new Redis({ host: "127.0.0.1", port: i.port, lazyConnect: false, maxRetriesPerRequest: 1 }));
  try {
    await body(clients);
  } finally {
    for (const c of clients) c.disconnect();
    await Promise.all(instances.map((i) => i.stop()));
  }
}

test("redlock v5 lifecycle over 5 instances", async () => {
  await withInstances(5, async (clients) => {
    const redlock = new Redlock(clients, { retryCount: 0 });
    const lock = await redlock.acquire(["printer"], 10_000);
    assert.equal(await clients[0].get("printer"), lock.value);

    await assert.rejects(redlock.acquire(["printer"], 10_000), ExecutionError);

    const extended = await lock.extend(20_000);
    const pttl = await clients[2].pttl("printer");
    assert.ok(pttl > 10_000 && pttl <= 20_000, `pttl ${pttl}`);

    // A lock object whose value is not the holder's: release must fail to take the key.
    const forged = Object.create(Object.getPrototypeOf(extended));
    Object.assign(forged, extended, { value: "0123456789abcdef0123456789abcdef" });
    await assert.rejects(redlock.release(forged), ExecutionError);
    assert.equal(await clients[1].get("printer"), lock.value);

    await extended.release();
    assert.equal(await clients[3].exists("printer"), 0);

    // Multi-resource locks are all or nothing.
    const both = await redlock.acquire(["a", "b"], 10_000);
    await assert.rejects(redlock.acquire(["b", "c"], 10_000), ExecutionError);
    assert.equal(await clients[4].exists("c"), 0);
    await both.release();
  });
});

test("redlock v5 lock expires and can be taken by another", async () => {
  await withInstances(3, async (clients) => {
    const redlock = new Redlock(clients, { retryCount: 0 });
    await redlock.acquire(["short"], 50);
    const deadline = Date.now() + 5_000;
    let second;
    while (!second && Date.now() < deadline) {
      try {
        second = await redlock.acquire(["short"], 10_000);
      } catch {
        await new Promise((r) => setTimeout(r, 20));
      }
    }
    assert.ok(second, "re-acquired after expiry");
    await second.release();
  });
});

test("redlock v5 using() extends automatically and counts exactly", async () => {
  await withInstances(3, async (clients) => {
    const redlock = new Redlock(clients, { retryCount: 200, retryDelay: 5, retryJitter: 5, automaticExtensionThreshold: 100 });
    await clients[0].set("counter", 0);
    const worker = async () => {
      for (let i = 0; i < 10; i++) {
        await redlock.using(["counter-lock"], 300, async (signal) => {
          const value = Number(await clients[0].get("counter"));
          await new Promise((r) => setTimeout(r, 2));
          if (signal.aborted) throw signal.error;
          await clients[0].set("counter", value + 1);
        });
      }
    };
    await Promise.all([worker(), worker(), worker()]);
    assert.equal(await clients[0].get("counter"), "30");
  });
});

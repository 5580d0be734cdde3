// Node's side of benchmarks/js_latency.py: times requests in blocks that Python asks for,
// so the Python and Node runtimes take turns on the machine (a noisy neighbour slows both).
//   node js/bench/latency.mjs STORE BUNDLE   then, on stdin, one JSON request per line:
//   {"mode": "store" | "memory", "users": ["u1", ...]}  ->  {"seconds": [per request]}
// "store": recommendFromStore (history and retired items read from SQLite every call);
// "memory": recommend() with the history already in memory, as a page holds it.

import { createInterface } from "node:readline";
import { openBundle, recommend, recommendFromStore, Store } from "../src/node.js";

const [storePath, bundleDir] = process.argv.slice(2);
const store = new Store(storePath);
const bundle = await openBundle(bundleDir);
const N = 10;

/** @param {string} user */
const fromStore = (user) => recommendFromStore(store, bundle, user, N);
/** @param {string} user */
const fromMemory = (user) => recommend(bundle, { userId: user, history: histories.get(user), n: N });
const histories = new Map();

for await (const line of createInterface({ input: process.stdin })) {
  const { mode, users } = JSON.parse(line);
  for (const u of users) if (!histories.has(u)) histories.set(u, store.history(u));
  const call = mode === "store" ? fromStore : fromMemory;
  const seconds = [];
  for (const user of users) {
    const t0 = process.hrtime.bigint();
    await call(user);
    seconds.push(Number(process.hrtime.bigint() - t0) / 1e9);
  }
  process.stdout.write(JSON.stringify({ seconds }) + "\n");
}

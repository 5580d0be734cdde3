#!/usr/bin/env node
// edgerec-js: the Node runtime from a shell (thin wrapper over src/node.js).
//   edgerec-js recommend BUNDLE [--user ID] [--history ID,ID...] [-n N] [--include ...] [--exclude ...] [--json]
//   edgerec-js recommend-store STORE BUNDLE USER... [-n N] [--include ...] [--exclude ...] [--json]
// Lists of ids are comma-separated; --json prints one JSON object per user, shaped like
// the Python CLI's `edgerec recommend --json`.

import { parseArgs } from "node:util";
import { EdgerecError, openBundle, recommend, recommendFromStore } from "../src/node.js";

/** @param {string|undefined} text */
const ids = (text) => (text === undefined ? undefined : text.split(",").filter(Boolean));

/** @param {import("../src/core.js").Recommendations} recs @param {boolean} asJson */
function show(recs, asJson) {
  if (asJson) {
    const items = recs.items.map((r) => ({ item_id: r.itemId, score: r.score }));
    console.log(JSON.stringify({ user_id: recs.userId, fallback: recs.fallback, items }));
    return;
  }
  console.log(`user ${recs.userId ?? "(visitor)"}: ${recs.fallback ? "most popular" : "personalised"}`);
  recs.items.forEach((r, i) => console.log(`${String(i + 1).padStart(3)}. ${r.itemId}  ${r.score.toFixed(4)}`));
}

async function main() {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      user: { type: "string" },
      history: { type: "string", default: "" },
      n: { type: "string", short: "n", default: "10" },
      include: { type: "string" },
      exclude: { type: "string" },
      json: { type: "boolean", default: false },
    },
  });
  const [command, ...args] = positionals;
  const n = Number(values.n);
  const filters = { include: ids(values.include), exclude: ids(values.exclude) };
  if (command === "recommend" && args.length === 1) {
    const bundle = await openBundle(args[0]);
    show(await recommend(bundle, { ...filters, userId: values.user ?? null, history: ids(values.history), n }), values.json);
  } else if (command === "recommend-store" && args.length >= 3) {
    const [store, bundle, ...users] = args;
    for (const user of users) show(await recommendFromStore(store, bundle, user, n, filters), values.json);
  } else {
    throw new EdgerecError("usage: edgerec-js recommend BUNDLE [options] | recommend-store STORE BUNDLE USER... [options]");
  }
}

main().catch((err) => {
  if (!(err instanceof EdgerecError) && !(err instanceof TypeError && /** @type {any} */ (err).code?.startsWith("ERR_PARSE_ARGS"))) throw err;
  console.error(`Error: ${err.message}`);
  process.exit(1);
});

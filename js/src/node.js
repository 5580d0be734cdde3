// edgerec for Node and Electron: bundles served with onnxruntime-node, histories read
// from the edgerec SQLite store with better-sqlite3.

import { createHash } from "node:crypto";
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import * as C from "./contract.js";
import { openWith, recommendWith } from "./core.js";
import { BundleError } from "./errors.js";
import { Store } from "./store.js";

export * from "./errors.js";
export { Bundle, recommend } from "./core.js";
export { Store } from "./store.js";

/**
 * Open a bundle directory (checksum verified) or a bundle already in memory.
 * @param {string | import("./core.js").BundleSource} source
 * @param {{threads?: number}} [options]  intra-op threads (default: one for small models)
 * @returns {Promise<import("./core.js").Bundle>}
 */
export async function openBundle(source, options = {}) {
  const src = typeof source === "string" ? readBundle(source) : source;
  return openWith(ort, src, { source: typeof source === "string" ? source : "bundle", digest: sha256, ...options });
}

/** @param {Uint8Array} bytes */
async function sha256(bytes) {
  return createHash("sha256").update(bytes).digest("hex");
}

/**
 * @param {string} dir
 * @returns {import("./core.js").BundleSource}
 */
function readBundle(dir) {
  const manifest = readJson(dir, C.MANIFEST_FILE, `not a bundle (no ${C.MANIFEST_FILE})`);
  const file = manifest?.[C.M_ONNX]?.file ?? C.MODEL_FILE;
  let modelBytes;
  try {
    modelBytes = readFileSync(join(dir, file));
  } catch {
    throw new BundleError(`${dir}: bundle has no ${file}`);
  }
  return { manifest, modelBytes, catalogue: readJson(dir, C.CATALOGUE_FILE, null) ?? {} };
}

/**
 * A JSON file of the bundle; a missing one is `missing` (an error message, or null: fine).
 * @param {string} dir
 * @param {string} name
 * @param {string|null} missing
 */
function readJson(dir, name, missing) {
  let text;
  try {
    text = readFileSync(join(dir, name), "utf8");
  } catch (err) {
    const code = /** @type {NodeJS.ErrnoException} */ (err).code;
    if (code === "ENOTDIR" || (code === "ENOENT" && !isDir(dir))) throw new BundleError(`${dir}: bundle directory not found`);
    if (missing === null) return null;
    throw new BundleError(`${dir}: ${missing}`);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new BundleError(`${join(dir, name)}: unreadable JSON (${/** @type {Error} */ (err).message})`);
  }
}

/** @param {string} path */
function isDir(path) {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/** @type {Map<string, Store>} */
const stores = new Map();
/** @type {Map<string, {identity: string, bundle: Promise<import("./core.js").Bundle>}>} */
const bundles = new Map();

/**
 * The bundle at `dir`, opened once and re-opened when a new one is published there
 * (`edgerec publish` renames a complete bundle into place, so its manifest changes).
 * @param {string} dir
 */
function cachedBundle(dir) {
  let identity = "";
  try {
    const stat = statSync(join(dir, C.MANIFEST_FILE));
    identity = `${stat.ino}:${stat.mtimeMs}:${stat.size}`;
  } catch { /* openBundle names what is missing */ }
  const found = bundles.get(dir);
  if (found && found.identity === identity) return found.bundle;
  const bundle = openBundle(dir);
  bundles.set(dir, { identity, bundle });
  bundle.catch(() => bundles.delete(dir));
  return bundle;
}

/**
 * Top-n for a user of an edgerec store, as the Python `Recommender.recommend` gives it:
 * the history read newest first, seen and retired items never returned, the most
 * popular items for a user the model cannot score. Paths are opened once and kept.
 * @param {string | Store} store  a store path or an open Store
 * @param {string | import("./core.js").Bundle} bundle  a bundle directory or an opened bundle
 * @param {string} userId
 * @param {number} [n]
 * @param {{include?: string[], exclude?: string[]}} [options]
 * @returns {Promise<import("./core.js").Recommendations>}
 */
export async function recommendFromStore(store, bundle, userId, n = 10, options = {}) {
  if (typeof store === "string") {
    if (!stores.has(store)) stores.set(store, new Store(store));
    store = /** @type {Store} */ (stores.get(store));
  }
  const opened = typeof bundle === "string" ? await cachedBundle(bundle) : bundle;
  const user = String(userId);
  const db = store;
  const request = { ...options, userId: user, history: db.history(user), n };
  return recommendWith(opened, request, { retired: db.inactiveItems(), popular: (limit) => db.popular(limit) });
}

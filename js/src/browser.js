// edgerec in a browser: bundles served with onnxruntime-web (WebAssembly). The page maps
// the bare specifier "onnxruntime-web" to the library's ES module with an import map,
// e.g. {"imports": {"onnxruntime-web": "/ort/ort.wasm.min.mjs"}}; the .wasm files are
// then loaded from beside that module (the same origin).

import * as ort from "onnxruntime-web";
import * as C from "./contract.js";
import { openWith } from "./core.js";
import { BundleError } from "./errors.js";

export * from "./errors.js";
export { Bundle, recommend } from "./core.js";

/**
 * Open a bundle from a base URL (a directory written by `edgerec export-web`: manifest,
 * model and catalogue) or from a bundle already in memory. The model's sha256 is checked
 * where the page can compute one (secure contexts: https, localhost, 127.0.0.1).
 * @param {string | URL | import("./core.js").BundleSource} source
 * @param {{threads?: number}} [options]
 * @returns {Promise<import("./core.js").Bundle>}
 */
export async function openBundle(source, options = {}) {
  const digest = globalThis.crypto?.subtle ? sha256 : null;
  if (typeof source !== "string" && !(source instanceof URL)) {
    return openWith(ort, source, { source: "bundle", digest, ...options });
  }
  const base = new URL(String(source).endsWith("/") ? String(source) : `${source}/`, location.href);
  const manifest = await fetchFile(base, C.MANIFEST_FILE, (r) => r.json());
  const modelBytes = new Uint8Array(await fetchFile(base, manifest?.[C.M_ONNX]?.file ?? C.MODEL_FILE, (r) => r.arrayBuffer()));
  const catalogue = await fetchFile(base, C.CATALOGUE_FILE, (r) => r.json(), true);
  return openWith(ort, { manifest, modelBytes, catalogue: catalogue ?? {} }, { source: base.href, digest, ...options });
}

/**
 * @template T
 * @param {URL} base
 * @param {string} name
 * @param {(response: Response) => Promise<T>} read
 * @param {boolean} [optional]  a 404 gives null instead of an error
 * @returns {Promise<T|null>}
 */
async function fetchFile(base, name, read, optional = false) {
  const url = new URL(name, base);
  const response = await fetch(url);
  if (optional && response.status === 404) return null;
  if (!response.ok) throw new BundleError(`${url}: HTTP ${response.status} (not a bundle, or not served)`);
  try {
    return await read(response);
  } catch (err) {
    throw new BundleError(`${url}: unreadable (${/** @type {Error} */ (err).message})`);
  }
}

/** @param {Uint8Array} bytes */
async function sha256(bytes) {
  const hash = new Uint8Array(await crypto.subtle.digest("SHA-256", /** @type {Uint8Array<ArrayBuffer>} */ (bytes)));
  return Array.from(hash, (b) => b.toString(16).padStart(2, "0")).join("");
}

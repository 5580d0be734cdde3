#!/usr/bin/env node
// A static server for the kiosk page, on one origin: the page (this folder), the edgerec
// browser module (/edgerec/ -> js/src), onnxruntime-web and its .wasm files
// (/ort/ -> js/node_modules/onnxruntime-web/dist) and a web export (/bundle/).
//   node js/examples/kiosk/serve.js WEB_DIR [--port 8080] [--host 127.0.0.1]
// WEB_DIR is what `edgerec export-web BUNDLE WEB_DIR --store STORE` wrote. Prints the
// page's URL once listening (--port 0 picks a free port).

import { createReadStream, statSync } from "node:fs";
import { createServer } from "node:http";
import { dirname, extname, join, normalize, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const here = dirname(fileURLToPath(import.meta.url));
const js = resolve(here, "..", "..");
const TYPES = {
  ".html": "text/html; charset=utf-8", ".js": "text/javascript", ".mjs": "text/javascript",
  ".css": "text/css", ".json": "application/json", ".wasm": "application/wasm",
  ".onnx": "application/octet-stream", ".png": "image/png",
};

const { values, positionals } = parseArgs({
  options: { port: { type: "string", default: "8080" }, host: { type: "string", default: "127.0.0.1" } },
  allowPositionals: true,
});
if (positionals.length !== 1) {
  console.error("usage: node js/examples/kiosk/serve.js WEB_DIR [--port 8080] [--host 127.0.0.1]");
  process.exit(2);
}
const ROOTS = [
  ["/edgerec/", join(js, "src")],
  ["/ort/", join(js, "node_modules", "onnxruntime-web", "dist")],
  ["/bundle/", resolve(positionals[0])],
  ["/", here],
];

/**
 * The file a URL path names inside one of the roots, or null (never outside a root).
 * @param {string} path
 */
function locate(path) {
  const [prefix, root] = ROOTS.find(([p]) => path.startsWith(p)) ?? ["/", here];
  const file = normalize(join(root, decodeURIComponent(path.slice(prefix.length)) || "index.html"));
  if (file !== root && !file.startsWith(root + sep)) return null;
  try {
    return statSync(file).isFile() ? file : null;
  } catch {
    return null;
  }
}

const server = createServer((req, res) => {
  const file = locate(new URL(req.url ?? "/", "http://localhost").pathname);
  if (file === null) {
    res.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
    return;
  }
  res.writeHead(200, {
    "content-type": TYPES[extname(file)] ?? "application/octet-stream",
    "cache-control": "no-cache",
  });
  createReadStream(file).pipe(res);
});
server.listen(Number(values.port), values.host, () => {
  const { port } = /** @type {import("node:net").AddressInfo} */ (server.address());
  console.log(`kiosk: http://${values.host}:${port}/`);
});

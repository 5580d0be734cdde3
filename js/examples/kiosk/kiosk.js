// The kiosk: a grid of items for a visitor, re-ranked in the page on every tap.
// The model runs here (onnxruntime-web, WebAssembly); the visitor's taps stay in this
// browser's localStorage, newest first: the history a recommendation is built from.
// URL parameters: ?n=12 (tiles), ?bundle=/bundle/ (a directory from `edgerec export-web`),
// ?idle=120 (seconds without a tap after which the next visitor starts afresh; 0: never).

import { openBundle, recommend } from "/edgerec/browser.js";

const params = new URLSearchParams(location.search);
const N = Number(params.get("n") ?? 12);
const IDLE_MS = Number(params.get("idle") ?? 120) * 1000;
const grid = /** @type {HTMLElement} */ (document.getElementById("grid"));
const status = /** @type {HTMLElement} */ (document.getElementById("status"));

/** @param {Error} err */
function fail(err) {
  status.textContent = `Cannot recommend: ${err.message}`;
  document.body.dataset.state = "error";
  throw err;
}

const bundle = await openBundle(params.get("bundle") ?? "/bundle/").catch(fail);
// One history per model, so a new export does not inherit taps on unknown items.
const MODEL = bundle.manifest.onnx.sha256.slice(0, 16);
const KEY = `edgerec.kiosk.history:${MODEL}`;
const AT = `edgerec.kiosk.last-tap:${MODEL}`;

/** @returns {string[]} */
const taps = () => JSON.parse(localStorage.getItem(KEY) ?? "[]");
const lastTap = () => Number(localStorage.getItem(AT) ?? 0);

/** @param {string[]} history */
function remember(history) {
  localStorage.setItem(KEY, JSON.stringify(history));
  localStorage.setItem(AT, String(Date.now()));
}

/** @param {string} id */
function hue(id) {
  let h = 0;
  for (const ch of id) h = (h * 31 + ch.charCodeAt(0)) % 360;
  return h;
}

/**
 * The visitor's list: the model's, or without history the most popular items (the
 * catalogue order when the export had no store to rank them).
 * @param {string[]} history
 */
async function ranked(history) {
  const recs = await recommend(bundle, { userId: null, history, n: N });
  if (recs.items.length || !recs.fallback) return recs;
  const seen = new Set(history);
  const items = bundle.itemIds.filter((id) => !seen.has(id) && !bundle.retired.has(id)).slice(0, N);
  return { ...recs, items: items.map((itemId) => ({ itemId, score: NaN })) };
}

async function render() {
  const history = taps();
  const started = performance.now();
  const recs = await ranked(history);
  const ms = performance.now() - started;
  grid.replaceChildren(...recs.items.map((r, i) => tile(r, i + 1)));
  status.textContent = recs.fallback
    ? "Most popular right now: tap what you like."
    : `Picked for you from ${history.length} tap${history.length === 1 ? "" : "s"}.`;
  document.getElementById("taps").textContent = history.length
    ? `You tapped: ${history.map((id) => bundle.title(id)).join(" · ")}` : "";
  document.getElementById("footer").textContent =
    `${bundle.kind} model, ${bundle.nItems} items, ranked in ${ms.toFixed(1)} ms on this device`;
  document.body.dataset.renders = String(Number(document.body.dataset.renders ?? 0) + 1);
  document.body.dataset.state = "ready";
}

/**
 * @param {{itemId: string, score: number}} r
 * @param {number} rank
 */
function tile(r, rank) {
  const button = document.createElement("button");
  button.className = "tile";
  button.type = "button";
  button.dataset.itemId = r.itemId;
  button.dataset.score = String(r.score);
  button.style.setProperty("--hue", String(hue(r.itemId)));
  const title = bundle.title(r.itemId);
  button.innerHTML = '<span class="rank"></span><span class="title"></span><span class="meta"></span>';
  button.querySelector(".rank").textContent = `#${rank}`;
  button.querySelector(".title").textContent = title;
  button.querySelector(".meta").textContent = title === r.itemId ? "" : r.itemId;
  button.addEventListener("click", () => {
    remember([r.itemId, ...taps()]);
    render().catch(fail);
  });
  return button;
}

// For scripts driving the page (the latency benchmark): the opened bundle.
window.edgerecKiosk = { bundle };

function startOver() {
  localStorage.removeItem(KEY);
  localStorage.removeItem(AT);
  render().catch(fail);
}

/** Whether the last visitor left: taps, then none for the idle time. */
const expired = () => IDLE_MS > 0 && taps().length > 0 && Date.now() - lastTap() > IDLE_MS;

document.getElementById("reset").addEventListener("click", startOver);
// A kiosk serves one visitor after another: a quiet spell ends the visit.
setInterval(() => { if (expired()) startOver(); }, 5000);
if (expired()) startOver();
else render().catch(fail);

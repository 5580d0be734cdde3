// Drives the kiosk page in the system's Chromium (playwright-core, never a downloaded
// browser): taps tiles like a visitor and prints what the page showed, as JSON, for the
// Python tests (tests/test_js_runtime.py) and the browser latency benchmark.
//   node js/test/kiosk-taps.mjs URL [--taps 3] [--screenshot out.png] [--bench FILE]
//     [--chromium /usr/bin/chromium]
// --bench FILE: also time, inside the page, recommend() on the loaded bundle for each
// request of FILE (a JSON list of {userId, history}), reported as milliseconds each.

import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { chromium } from "playwright-core";

const { values, positionals } = parseArgs({
  options: {
    taps: { type: "string", default: "3" },
    screenshot: { type: "string" },
    bench: { type: "string" },
    chromium: { type: "string", default: "/usr/bin/chromium" },
  },
  allowPositionals: true,
});
const url = new URL(positionals[0]);
const FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
  "--disable-component-update", "--no-first-run"];

const browser = await chromium.launch({ executablePath: values.chromium, headless: true, args: FLAGS });
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
  const offsite = [];
  await page.route("**/*", (route) => {
    if (new URL(route.request().url()).origin === url.origin) return route.continue();
    offsite.push(route.request().url());
    return route.abort();
  });
  const errors = [];
  page.on("pageerror", (err) => errors.push(err.message));
  await page.goto(url.href);
  await page.waitForSelector("body[data-state=ready], body[data-state=error]", { timeout: 60_000 });
  const shown = () => page.$$eval(".tile", (tiles) => tiles.map((t) => ({
    itemId: t.dataset.itemId, score: Number(t.dataset.score) })));
  const renders = () => page.evaluate(() => Number(document.body.dataset.renders ?? 0));
  const before = await shown();
  const taps = [];
  for (let i = 0; i < Number(values.taps); i++) {
    const count = await renders();
    const tile = page.locator(".tile").nth(i);
    taps.push(await tile.getAttribute("data-item-id"));
    await tile.click();
    await page.waitForFunction((n) => Number(document.body.dataset.renders) > n, count);
  }
  const after = await shown();
  if (values.screenshot) await page.screenshot({ path: values.screenshot, fullPage: true });
  const history = await page.evaluate(() => Object.entries(localStorage)
    .filter(([key]) => key.startsWith("edgerec.kiosk.history:")).map(([, v]) => JSON.parse(v))[0] ?? []);
  const status = await page.textContent("#status");
  const requests = values.bench ? JSON.parse(readFileSync(values.bench, "utf8")) : [];
  const benchMs = await page.evaluate(async (list) => {
    const { recommend } = await import("/edgerec/browser.js");
    const { bundle } = window.edgerecKiosk;
    const times = [];
    for (const request of list) {
      const t0 = performance.now();
      await recommend(bundle, { ...request, n: 10 });
      times.push(performance.now() - t0);
    }
    return times;
  }, requests);
  console.log(JSON.stringify({ before, taps, after, history, status, offsite, errors, benchMs }));
} finally {
  await browser.close();
}

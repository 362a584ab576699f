// Shared pieces of the end-to-end tests: a real collector process on 127.0.0.1:0 with a temp
// data dir, Debian's Chromium driven by playwright-core, and an API client with the token.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const ARTIFACTS = join(ROOT, "tests", "artifacts");
const TOKEN = "e2e-admin-token";

/** Starts the built collector; resolves once it printed its URL. */
export async function startCollector(extraArgs = []) {
  const dataDir = mkdtempSync(join(tmpdir(), "footfall-e2e-"));
  const bin = process.env.FOOTFALL_COLLECTOR_BIN || join(ROOT, "target", "debug", "footfall-collector");
  const child = spawn(
    bin,
    ["--listen", "127.0.0.1:0", "--data-dir", dataDir, "--admin-token", TOKEN, ...extraArgs],
    { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, RUST_LOG: "warn" } },
  );
  let stderr = "";
  child.stderr.on("data", (d) => (stderr += d));
  const url = await new Promise((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => reject(new Error(`collector did not start: ${stderr}`)), 15000);
    child.stdout.on("data", (d) => {
      out += d;
      const m = out.match(/footfall listening on (http:\/\/\S+)/);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    child.on("exit", (code) => reject(new Error(`collector exited (${code}): ${stderr}`)));
  });
  return {
    url,
    dataDir,
    async api(path, { token = TOKEN, method = "GET" } = {}) {
      const headers = token ? { authorization: `Bearer ${token}` } : {};
      const res = await fetch(url + path, { method, headers });
      return { status: res.status, body: await res.json() };
    },
    async stop() {
      child.kill("SIGTERM");
      await new Promise((r) => (child.exitCode !== null ? r() : child.on("exit", r)));
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Debian's Chromium, headless, with the flags this machine needs. */
export function launchChromium(extraArgs = []) {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: [
      "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
      // Headless Chromium says HeadlessChrome, which the collector counts as a bot and leaves
      // out of answers; a person's user agent, set at launch so that beacons carry it too.
      "--user-agent=Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/143.0.0.0 Safari/537.36",
      ...extraArgs,
    ],
  });
}

/** Waits until the SDK has loaded and started on `page`. */
export async function sdkReady(page) {
  await page.waitForFunction(
    () => typeof window.footfall?.getAnonymousId === "function" && !window.footfall.q &&
      !!window.footfall.getAnonymousId(),
    null,
    { timeout: 15000 },
  );
}

/** Polls `probe` until it returns a truthy value or `ms` passes. */
export async function eventually(probe, ms = 10000) {
  const until = Date.now() + ms;
  let last;
  while (Date.now() < until) {
    last = await probe();
    if (last) return last;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`condition not met within ${ms} ms; last: ${JSON.stringify(last)}`);
}

export async function screenshot(page, name) {
  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
}

// ---- Helpers of the session and identity tests ----

import { gunzipSync } from "node:zlib";

/** The loader snippet of the demo shop (README, "Adding it to a site"). */
export const LOADER_SNIPPET =
  `(function(w){if(w.footfall)return;var f=w.footfall={q:[]};"init page track identify setUserProperties register unregister reset flush optOut optIn".split(" ").forEach(function(m){f[m]=function(){var a=[].slice.call(arguments);if(m!=="flush")return void f.q.push([Date.now(),m,a]);return new Promise(function(d){f.q.push([Date.now(),m,a,d])})}})})(window);`;

/**
 * Serves a test page at `${baseUrl}/t/<anything>` in `context` (the collector's own origin, so
 * the SDK and its wasm come from the real collector). `attrs` become the script tag's data-
 * attributes (`{ "session-scope": "tab" }` gives `data-session-scope="tab"`); `data-key="demo"`
 * is always there. The page has a `#buy` button (tracks "buy") and a `#noop` button (tracks
 * nothing).
 */
export async function serveTestPage(context, baseUrl, attrs = {}, extraBody = "") {
  const data = Object.entries({ key: "demo", ...attrs })
    .map(([k, v]) => ` data-${k}="${String(v).replace(/"/g, "&quot;")}"`)
    .join("");
  const html = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Footfall test page</title>
<script>${LOADER_SNIPPET}</script>
<script async src="/sdk/footfall.js"${data}></script></head>
<body><h1 id="title">Test page</h1>
<button id="buy" onclick="footfall.track('buy')">Buy</button>
<button id="noop">Nothing</button>
${extraBody}</body></html>`;
  await context.route(`${baseUrl}/t/**`, (route) =>
    route.fulfill({ status: 200, contentType: "text/html; charset=utf-8", body: html }),
  );
  return `${baseUrl}/t/page.html`;
}

/** Waits until the SDK has loaded and replaced the loader's queue (started or not, opted out or not). */
export async function sdkStarted(page) {
  await page.waitForFunction(
    () => typeof window.footfall?.track === "function" && !window.footfall.q &&
      typeof window.footfall.getAnonymousId === "function",
    null,
    { timeout: 15000 },
  );
}

/**
 * Records every event the pages of `context` post to `/v1/batch` (fetch or beacon), in the
 * order the requests were made. Returns `{ events, requests }` (live arrays).
 */
export function recordBatches(context) {
  const rec = { events: [], requests: [] };
  context.on("request", (req) => {
    if (req.method() !== "POST" || !new URL(req.url()).pathname.endsWith("/v1/batch")) return;
    rec.requests.push(req);
    let body = null;
    try {
      body = JSON.parse(req.postData() ?? "null");
    } catch {
      try {
        body = JSON.parse(gunzipSync(req.postDataBuffer()).toString("utf8"));
      } catch {
        body = null;
      }
    }
    for (const e of body?.events ?? []) rec.events.push(e);
  });
  return rec;
}

/** Every stored event of the person `id` (user ID or anonymous ID), with its session ID; [] on 404. */
export async function storedEvents(collector, id) {
  const r = await collector.api(`/api/v1/users/${encodeURIComponent(id)}`);
  if (r.status === 404) return [];
  if (r.status !== 200) throw new Error(`GET /api/v1/users/${id}: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body.sessions.flatMap((s) =>
    s.events.map((e) => ({ ...e, session_id: s.session_id, anonymous_id: s.anonymous_id })));
}

/** Emulates the tab being hidden (the user switched tabs) or shown again. */
export async function setHidden(page, hidden) {
  await page.evaluate((h) => {
    Object.defineProperty(document, "visibilityState", { configurable: true, get: () => (h ? "hidden" : "visible") });
    Object.defineProperty(document, "hidden", { configurable: true, get: () => h });
    document.dispatchEvent(new Event("visibilitychange"));
  }, hidden);
}

/** The anonymous, session and user IDs the SDK reports on `page`. */
export function ids(page) {
  return page.evaluate(() => ({
    anonymousId: footfall.getAnonymousId(),
    sessionId: footfall.getSessionId(),
    userId: footfall.getUserId(),
  }));
}

/**
 * Freezes Playwright's fake clock (installed on `context`) a little ahead of the latest time the
 * `pages` see: from then on, time moves only when the test moves it. The fake clock runs with the
 * real one until then, so on a busy machine it can pass the chosen moment before the pause lands;
 * then the pause is tried again further ahead.
 */
export async function pauseClock(context, ...pages) {
  for (const ahead of [100, 500, 2000, 5000]) {
    const times = await Promise.all(pages.map((p) => p.evaluate(() => Date.now())));
    try {
      await context.clock.pauseAt(Math.max(...times) + ahead);
      return;
    } catch (e) {
      if (!/past/.test(String(e?.message))) throw e;
    }
  }
  throw new Error("pauseClock: the fake clock kept running past every moment chosen");
}

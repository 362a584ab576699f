// Shared pieces of the end-to-end tests: a real collector process on 127.0.0.1:0 with a temp
// data dir, a site of its own on another origin that puts the README's script tag on its
// pages (as every real site does), Debian's Chromium driven by playwright-core, and an API
// client with the token.
import { spawn } from "node:child_process";
import { createServer } from "node:http";
import { mkdtempSync, rmSync, mkdirSync, readFileSync, existsSync, copyFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname, extname, normalize, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const ARTIFACTS = join(ROOT, "tests", "artifacts");
const TOKEN = "e2e-admin-token";

/**
 * The collector binary as a site owner has it: the release build (`FOOTFALL_COLLECTOR_BIN`, set
 * by `cargo xtask test`) copied into an empty folder of its own, away from the source tree, so
 * that everything it serves must come from inside it.
 */
let installed;
function installedCollector() {
  if (!installed) {
    const built = process.env.FOOTFALL_COLLECTOR_BIN || join(ROOT, "target", "debug", "footfall-collector");
    const folder = mkdtempSync(join(tmpdir(), "footfall-install-"));
    installed = join(folder, "footfall-collector");
    copyFileSync(built, installed);
    process.on("exit", () => rmSync(folder, { recursive: true, force: true }));
  }
  return installed;
}

/** Starts the collector (run from its empty folder); resolves once it printed its URL. */
export async function startCollector(extraArgs = []) {
  const dataDir = mkdtempSync(join(tmpdir(), "footfall-e2e-"));
  const bin = installedCollector();
  const child = spawn(
    bin,
    ["--listen", "127.0.0.1:0", "--data-dir", dataDir, "--admin-token", TOKEN, ...extraArgs],
    { stdio: ["ignore", "pipe", "pipe"], cwd: dirname(bin), env: { ...process.env, RUST_LOG: "warn" } },
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

const SHOP = join(ROOT, "examples", "shop");
/** Picks the test page the site serves at /t/* (set by `serveTestPage`'s route). */
const TEST_PAGE_HEADER = "x-footfall-test-page";
const TYPES = {
  ".html": "text/html; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
};

/**
 * The demo shop's page `html` as a site of its own serves it: the README's script tag, with
 * the collector's absolute `/sdk/footfall.js` as `src` and the collector as `data-endpoint`.
 */
export function withCollector(html, collectorUrl) {
  const tag = '<script async src="/sdk/footfall.js"';
  if (!html.includes(tag)) throw new Error("the demo page has no relative script tag to rewrite");
  return html.replace(tag, `<script async src="${collectorUrl}/sdk/footfall.js" data-endpoint="${collectorUrl}"`);
}

/**
 * A site on an origin of its own, as in production (the collector is always another origin):
 * a Node server on 127.0.0.1 with an OS-picked port, reached as `http://localhost:PORT` (which
 * the collector's default `demo` site allows; a suite that passes `--site` must allow
 * `site.url`). It serves the demo shop (examples/shop) under `/demo/` with the script tag
 * pointing at `collectorUrl` (the collector, or a gateway in front of it), the test pages of
 * `serveTestPage`, and any page added with `site.page(path, html, headers)`.
 * `site.at(host)` is the same server under another host name (`127.0.0.1`, or one mapped by
 * `--host-resolver-rules`).
 */
export async function startSite(collectorUrl) {
  const pages = new Map();
  const testPages = [];
  const site = {
    collectorUrl,
    page(path, html, headers = {}) {
      pages.set(path, { html, headers });
      return site.url + path;
    },
    /** Keeps `html` as a test page; answers its number (see `serveTestPage`). */
    testPage(html) {
      return testPages.push(html) - 1;
    },
    at(host) {
      return `http://${host}:${site.port}`;
    },
  };
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url, "http://site").pathname);
    if (path === "/favicon.ico") {
      res.writeHead(204).end();
      return;
    }
    const testPage = testPages[req.headers[TEST_PAGE_HEADER]];
    const own = pages.get(path) ?? (path.startsWith("/t/") && testPage !== undefined ? { html: testPage } : null);
    if (own) {
      res.writeHead(200, { "content-type": TYPES[".html"], "cache-control": "no-cache", ...own.headers });
      res.end(own.html);
      return;
    }
    const rel = path === "/demo/" ? "index.html" : path.startsWith("/demo/") ? path.slice("/demo/".length) : null;
    const file = rel && normalize(join(SHOP, rel));
    if (!file || !file.startsWith(SHOP + sep) || !existsSync(file)) {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found");
      return;
    }
    const type = TYPES[extname(file)] ?? "application/octet-stream";
    let body = readFileSync(file);
    if (extname(file) === ".html") body = withCollector(body.toString("utf8"), site.collectorUrl);
    res.writeHead(200, { "content-type": type, "cache-control": "no-cache" });
    res.end(body);
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  site.port = server.address().port;
  site.url = site.at("localhost");
  site.close = () => {
    server.closeAllConnections?.();
    return new Promise((r) => server.close(r));
  };
  return site;
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
 * The test page: the loader snippet and the README's script tag, its `src` the absolute
 * `${collectorUrl}/sdk/footfall.js` and `data-endpoint` the collector. `attrs` become the
 * script tag's data- attributes (`{ "session-scope": "tab" }` gives `data-session-scope="tab"`);
 * `data-key="demo"` is always there. The page has a `#buy` button (tracks "buy") and a `#noop`
 * button (tracks nothing).
 */
export function testPageHtml(collectorUrl, attrs = {}, extraBody = "") {
  const data = Object.entries({ key: "demo", endpoint: collectorUrl, ...attrs })
    .map(([k, v]) => ` data-${k}="${String(v).replace(/"/g, "&quot;")}"`)
    .join("");
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Footfall test page</title>
<script>${LOADER_SNIPPET}</script>
<script async src="${collectorUrl}/sdk/footfall.js"${data}></script></head>
<body><h1 id="title">Test page</h1>
<button id="buy" onclick="footfall.track('buy')">Buy</button>
<button id="noop">Nothing</button>
${extraBody}</body></html>`;
}

/**
 * Serves the test page (`testPageHtml`) at `${site.url}/t/<anything>` in `context`: on the
 * site's origin, not the collector's, with the SDK and its wasm from `site.collectorUrl`.
 * Answers the page's URL. The site's server answers (a page Playwright fulfilled itself would
 * have no address, and Chromium's Local Network Access would then refuse it the collector on
 * 127.0.0.1); the route only adds a header that tells the server which page this context has.
 */
export async function serveTestPage(context, site, attrs = {}, extraBody = "") {
  const id = site.testPage(testPageHtml(site.collectorUrl, attrs, extraBody));
  await context.route(`${site.url}/t/**`, (route) =>
    route.continue({ headers: { ...route.request().headers(), [TEST_PAGE_HEADER]: String(id) } }),
  );
  return `${site.url}/t/page.html`;
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

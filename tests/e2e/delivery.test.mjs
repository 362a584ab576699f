// Delivery rules of product.md §1 ("Delivery") in real Chromium: the page-hide beacon (and
// Chromium's 64 KB budget for beacons in flight), the durable outbox in localStorage (reload,
// reload mid-send in one of two tabs, crash with one of two new tabs draining, beacons not
// counted as acknowledged), retries with backoff and Retry-After, offline vs blocked, what a
// 4xx does, and flush().
//
// The SDK and its endpoint are a small Node gateway in front of the collector, because
// Playwright neither sees nor intercepts the beacons a page sends while it unloads: the gateway
// records every POST /v1/batch (raw body size, events, answer) and can answer 503, hold a
// request, or pass it on. The pages are on a third origin, the site's (harness.startSite), so
// every request of the SDK is cross-origin, as on a real site; the gateway's own answers carry
// the CORS headers the collector's do. `page.route` is still used where the brief asks
// for it (500/429, a blocked endpoint); it only sees requests of live pages.
// Time-dependent cases use Playwright's fake clock, paused, and advanced in steps.
//
// Run: FOOTFALL_COLLECTOR_BIN=target/debug/footfall-collector node --test tests/e2e/delivery.test.mjs
import { test, before, after, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { gunzipSync } from "node:zlib";
import {
  startCollector, startSite, launchChromium, sdkReady, eventually, serveTestPage, storedEvents, setHidden, pauseClock,
} from "./harness.mjs";

const SEC = 1000;
const MIN = 60 * SEC;
const BEACON_LIMIT = 64 * 1024;
/** Only flush(), page hide and retries send: nothing leaves on a timer or a full batch. */
const QUIET = { "flush-interval": "600000", "batch-size": "500" };

let collector, gateway, site, browser;
before(async () => {
  gateway = await startGateway();
  site = await startSite(gateway.url); // the page's script tag and endpoint: the gateway
  collector = await startCollector(["--rate-limit", "0", "--site", `demo=${site.url}`]);
  gateway.target = collector.url;
  browser = await launchChromium();
});
after(async () => {
  await browser?.close();
  await collector?.stop();
  await gateway?.close();
  await site?.close();
});
beforeEach(() => gateway.reset());

// ---- The gateway ----

function decodeEvents(raw) {
  for (const decode of [(b) => b.toString("utf8"), (b) => gunzipSync(b).toString("utf8")]) {
    try {
      const body = JSON.parse(decode(raw));
      return { sentAt: Date.parse(body?.sent_at), events: Array.isArray(body?.events) ? body.events : [] };
    } catch { /* next */ }
  }
  return { sentAt: NaN, events: [] };
}

/**
 * The CORS headers of the collector's answers (refusals included) to a page of another origin:
 * without them the page could not read the status or Retry-After, only a network failure.
 */
function cors(origin) {
  return origin
    ? {
      "access-control-allow-origin": origin, "access-control-allow-credentials": "true",
      "access-control-expose-headers": "Retry-After", "vary": "Origin",
    }
    : {};
}

const HOP = new Set(["host", "connection", "keep-alive", "content-length", "transfer-encoding", "expect"]);

/**
 * An HTTP server on 127.0.0.1 that forwards everything to `gateway.target` (the collector).
 * `mode` decides for each POST /v1/batch: "pass", "fail" (503), "hold" (until releaseAll(), then
 * passed on), or a function of the record returning one of those or `{ status, headers, body }`.
 */
async function startGateway() {
  const gw = {
    target: null,
    mode: "pass",
    /** Every POST /v1/batch: { raw, bytes, encoding, type, events, sentAt, status, at } */
    batches: [],
    held: [],
    /** When true, GETs of the wasm wait like held batches (a slow network while it loads). */
    holdWasm: false,
    reset() {
      this.mode = "pass";
      this.holdWasm = false;
      this.releaseAll();
      this.batches = [];
    },
    releaseAll() {
      for (const release of this.held.splice(0)) release();
    },
    /** Batches that carried an event named `name` (or satisfying a predicate). */
    carrying(match) {
      const f = typeof match === "function" ? match : (e) => e.name === match;
      return this.batches.filter((b) => b.events.some(f));
    },
  };
  async function handle(req, res) {
    const chunks = [];
    for await (const c of req) chunks.push(c);
    const raw = Buffer.concat(chunks);
    const path = new URL(req.url, "http://gateway").pathname;
    let rec = null;
    if (req.method === "GET" && path.endsWith("/footfall_bg.wasm") && gw.holdWasm) {
      await new Promise((r) => gw.held.push(r));
    }
    if (req.method === "POST" && path === "/v1/batch") {
      rec = {
        raw, bytes: raw.length, encoding: req.headers["content-encoding"] ?? null,
        type: req.headers["content-type"] ?? null, ...decodeEvents(raw), status: null, at: Date.now(),
      };
      gw.batches.push(rec);
      let decision = typeof gw.mode === "function" ? gw.mode(rec) ?? "pass" : gw.mode;
      if (decision === "hold") {
        rec.status = "held";
        await new Promise((r) => gw.held.push(r));
        decision = "pass";
      }
      if (decision === "fail") decision = { status: 503, body: { error: { code: "unavailable", message: "test gateway: 503" } } };
      if (typeof decision === "object") {
        rec.status = decision.status;
        res.writeHead(decision.status, { "content-type": "application/json", ...cors(req.headers.origin), ...decision.headers });
        res.end(JSON.stringify(decision.body ?? {}));
        return;
      }
    }
    const headers = {};
    for (const [k, v] of Object.entries(req.headers)) if (!HOP.has(k)) headers[k] = v;
    const r = await fetch(gw.target + req.url, {
      method: req.method, headers, redirect: "manual",
      body: req.method === "GET" || req.method === "HEAD" ? undefined : raw,
    });
    const body = Buffer.from(await r.arrayBuffer());
    const out = {};
    r.headers.forEach((v, k) => {
      if (!HOP.has(k) && k !== "content-encoding") out[k] = v;
    });
    if (rec) rec.status = r.status;
    res.writeHead(r.status, out);
    res.end(body);
  }
  const server = createServer((req, res) => {
    handle(req, res).catch((e) => {
      try {
        res.writeHead(502, { "content-type": "text/plain" }).end(String(e));
      } catch { /* the client left */ }
    });
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  gw.url = `http://127.0.0.1:${server.address().port}`;
  gw.close = () => {
    gw.releaseAll();
    server.closeAllConnections?.();
    return new Promise((r) => server.close(r));
  };
  return gw;
}

// ---- Pages, time and the stored events ----

/** A fresh browser profile serving the test page (and a page without the SDK) on the site. */
async function setup(t, { clock = false, attrs = QUIET } = {}) {
  const context = await browser.newContext();
  t.after(() => context.close().catch(() => {}));
  if (clock) await context.clock.install();
  const url = await serveTestPage(context, site, attrs);
  await context.route(`${site.url}/elsewhere/**`, (route) => route.fulfill({
    status: 200, contentType: "text/html; charset=utf-8",
    body: "<!doctype html><html><head><title>Elsewhere</title></head><body><p>No SDK here.</p></body></html>",
  }));
  return { context, url, elsewhere: `${site.url}/elsewhere/next.html` };
}

/** Opens `url` in a new tab of `context`, waits for the SDK; collects page errors and warnings. */
async function open(context, url, beforeGoto) {
  const page = await context.newPage();
  page.errors = [];
  page.warnings = [];
  page.on("pageerror", (e) => page.errors.push(e.message));
  page.on("console", (m) => {
    if (m.type() === "warning") page.warnings.push(m.text());
  });
  if (beforeGoto) await beforeGoto(page);
  await page.goto(url);
  await sdkReady(page);
  return page;
}

const anonId = (page) => page.evaluate(() => footfall.getAnonymousId());
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Advances the paused fake clock by `step` up to `total`, letting each page run between steps,
 * until `until()` is truthy. Answers whether it became truthy. Each step jumps first and then
 * fires the timers that came due (`fastForward`), so a request a timer starts is answered
 * before the clock moves again, as with real time (with `runFor` a timer firing early in a
 * long step would see its quick failure take the rest of the step).
 */
async function advance(context, pages, total, step, until = () => false) {
  for (let done = 0; done < total; done += step) {
    if (await until()) return true;
    await context.clock.fastForward(step);
    for (const p of pages) await p.evaluate(() => 0).catch(() => {});
    await sleep(5); // let gateway and route handlers run
  }
  return !!(await until());
}

/**
 * For what takes real time (a drain of many batches to the collector): until `until()` holds or
 * `realMs` real milliseconds pass, moves the fake clock by `step` (so retry timers fire) every
 * 50 real milliseconds. Answers whether it held.
 */
async function settle(context, pages, until, { realMs = 60000, step = SEC } = {}) {
  const deadline = Date.now() + realMs;
  while (Date.now() < deadline) {
    if (await until()) return true;
    await context.clock.fastForward(step);
    for (const p of pages) await p.evaluate(() => 0).catch(() => {});
    await sleep(50);
  }
  return !!(await until());
}

/** Polls the collector until the person's stored events satisfy `predicate`; answers them. */
function stored(anon, predicate, ms = 15000) {
  return eventually(async () => {
    const events = await storedEvents(collector, anon);
    return predicate(events) && events;
  }, ms);
}

const named = (events, name) => events.filter((e) => e.name === name);

/** How many times each value of `props.u` occurs among `events`. */
function tally(events) {
  const counts = {};
  for (const e of events) if (e.props?.u !== undefined) counts[e.props.u] = (counts[e.props.u] ?? 0) + 1;
  return counts;
}

const once = (...values) => Object.fromEntries(values.map((v) => [v, 1]));
const range = (prefix, n) => Array.from({ length: n }, (_, i) => `${prefix}${i}`);

/** Total characters of every key and value in the page's localStorage. */
const localStorageChars = (page) => page.evaluate(() => {
  let n = 0;
  for (let i = 0; i < localStorage.length; i++) {
    const k = localStorage.key(i);
    n += k.length + (localStorage.getItem(k) ?? "").length;
  }
  return n;
});

// ---- Page hide ----

test("closing the page right after track() delivers the event", { timeout: 30000 }, async (t) => {
  const { context, url } = await setup(t);
  const page = await open(context, url);
  const anon = await anonId(page);
  await page.evaluate(() => footfall.flush()); // the page view sent: nothing queued, nothing in flight
  await page.evaluate(() => footfall.track("closed_right_after", { u: "close-1" }));
  await page.close();

  const events = await stored(anon, (ev) => named(ev, "closed_right_after").length > 0);
  assert.deepEqual(tally(named(events, "closed_right_after")), once("close-1"));
  assert.ok(gateway.carrying("closed_right_after").length >= 1, "it left as a POST /v1/batch");
  assert.deepEqual(page.errors, []);
});

test("navigating away right after track() delivers the event", { timeout: 30000 }, async (t) => {
  const { context, url, elsewhere } = await setup(t);
  const page = await open(context, url);
  const anon = await anonId(page);
  await page.evaluate(() => footfall.flush()); // the page view sent: nothing queued, nothing in flight
  await page.evaluate(() => footfall.track("navigated_away", { u: "nav-1" }));
  await page.goto(elsewhere); // a page without the SDK: only the leaving page can send it

  const events = await stored(anon, (ev) => named(ev, "navigated_away").length > 0);
  assert.deepEqual(tally(named(events, "navigated_away")), once("nav-1"));
  assert.deepEqual(page.errors, []);
});

// ---- Pages that go before the SDK has started ----

/** Opens `url` in a new tab without waiting for the SDK (only for the page's `load`). */
async function openEarly(context, url) {
  const page = await context.newPage();
  page.errors = [];
  page.on("pageerror", (e) => page.errors.push(e.message));
  await page.goto(url);
  return page;
}

test("a visitor who never returns tracks right after load while the wasm is slow to arrive, and closes the tab: stored once",
  { timeout: 30000 }, async (t) => {
    // A fresh profile (its own context), never visited again. The network is slow: a request
    // for footfall_bg.wasm waits until the test ends (the script tag has the wasm's bytes in
    // footfall.js; a build that fetched them would not have them when the page closes).
    const { context, url } = await setup(t);
    gateway.holdWasm = true;
    t.after(() => gateway.releaseAll());
    const page = await openEarly(context, url);
    await page.evaluate(() => footfall.track("once_only", { u: "once-1" }));
    await page.close();

    const batch = await eventually(() => gateway.carrying("once_only")[0])
      .catch(() => assert.fail("nothing left the page when it closed"));
    const anon = batch.events.find((e) => e.name === "once_only").anonymous_id;
    const events = await stored(anon, (ev) => named(ev, "once_only").length > 0);
    assert.deepEqual(tally(named(events, "once_only")), once("once-1"), "stored once");
    assert.equal(named(events, "$pageview").length, 1, "the page view went with it");
    assert.deepEqual(page.errors, []);
  });

test("the embedded bytes do not compile: the fetched wasm starts the SDK as soon as it arrives (no background compile to wait for), and a call then leaves with a page that closes",
  { timeout: 30000 }, async (t) => {
    const { context, url } = await setup(t);
    // The bytes inside footfall.js do not compile (as when a copy is served under another
    // charset), so the script fetches footfall_bg.wasm; the browser's background compile never
    // finishes, as on a slow device. The script compiles the fetched bytes at once, so the SDK
    // runs before the visitor can leave.
    await context.addInitScript(() => {
      const Module = WebAssembly.Module;
      let mangled = true;
      WebAssembly.Module = function (bytes) {
        if (mangled) {
          mangled = false;
          throw new WebAssembly.CompileError("test: the embedded bytes are mangled");
        }
        return new Module(bytes);
      };
      WebAssembly.Module.prototype = Module.prototype;
      WebAssembly.compile = () => new Promise(() => {});
    });
    const fetched = context.waitForEvent("response", (r) => r.url().endsWith("/footfall_bg.wasm"));
    const page = await openEarly(context, url);
    await fetched;
    await page.waitForFunction(() => !window.footfall.q, null, { timeout: 5000 })
      .catch(() => assert.fail("the SDK did not start from the fetched wasm"));
    await page.evaluate(() => footfall.track("fetched_then_closed", { u: "fetched-1" }));
    await page.close({ runBeforeUnload: true });

    const batch = await eventually(() => gateway.carrying("fetched_then_closed")[0]);
    const anon = batch.events.find((e) => e.name === "fetched_then_closed").anonymous_id;
    const events = await stored(anon, (ev) => named(ev, "fetched_then_closed").length > 0);
    assert.deepEqual(tally(named(events, "fetched_then_closed")), once("fetched-1"));
    assert.equal(named(events, "$pageview").length, 1, "the page view went with it");
    assert.deepEqual(page.errors, []);
  });

test("the SDK cannot start when the page closes: its calls are kept and sent by the next load, as made",
  { timeout: 30000 }, async (t) => {
    const { context, url } = await setup(t);
    // On the first page only, the browser compiles nothing: not in the background, and not
    // synchronously at page end.
    await context.addInitScript(() => {
      if (!location.pathname.endsWith("/page.html")) return;
      WebAssembly.compile = () => new Promise(() => {});
      WebAssembly.Module = function () {
        throw new RangeError("test: no compiling on this page");
      };
    });
    const page = await openEarly(context, url);
    const madeAt = await page.evaluate(() => {
      footfall.track("closed_before_wasm", { u: "kept-1" });
      return Date.now();
    });
    const firstUrl = page.url();
    await page.close({ runBeforeUnload: true });
    await sleep(300);
    assert.equal(gateway.carrying("closed_before_wasm").length, 0, "nothing could leave without the SDK");

    const next = await open(context, url.replace("page.html", "second.html"));
    const anon = await anonId(next);
    const events = await stored(anon, (ev) => named(ev, "closed_before_wasm").length > 0);
    const [kept] = named(events, "closed_before_wasm");
    assert.deepEqual(tally([kept]), once("kept-1"));
    assert.equal(kept.url, firstUrl, "recorded on the page it was made on");
    assert.ok(Math.abs(Date.parse(kept.timestamp) - madeAt) < 2000, "at the time it was made");
    assert.equal(await next.evaluate(() => localStorage.getItem("ff_q")), null, "replayed once");
    assert.deepEqual(next.errors, []);
  });

test("~200 KB queued at hide arrives whole, every request body under 64 KB", { timeout: 60000 }, async (t) => {
  const { context, url } = await setup(t);
  const page = await open(context, url);
  const anon = await anonId(page);
  await page.evaluate(() => footfall.flush()); // the page view sent: nothing queued, nothing in flight
  await page.evaluate(() => {
    for (let i = 0; i < 100; i++) footfall.track("big", { u: `big-${i}`, pad: "x".repeat(2000) });
  });
  // The user switches tabs: the page stays alive but hidden.
  await setHidden(page, true);

  const events = await stored(anon, (ev) => named(ev, "big").length >= 100, 20000).catch(() => null);
  const carrying = gateway.carrying("big");
  const sizes = carrying.map((b) => b.bytes);
  assert.ok(events, `all 100 events (~200 KB) arrive after the hide with no other trigger; ` +
    `arrived: ${new Set(carrying.flatMap((b) => b.events.filter((e) => e.name === "big").map((e) => e.props.u))).size}, ` +
    `request sizes: ${sizes}`);
  assert.deepEqual(tally(named(events, "big")), once(...range("big-", 100)));
  assert.ok(sizes.every((s) => s < BEACON_LIMIT), `every body is under 64 KB: ${sizes}`);
  assert.ok(carrying.length >= 4, `200 KB needs at least 4 requests under 64 KB, got ${carrying.length}`);
  assert.deepEqual(page.errors, []);
});

test("~200 KB queued when the tab closes: a beacon under 64 KB now, the rest on the next load",
  { timeout: 90000 }, async (t) => {
    // Chromium refuses beacons (sendBeacon answers false) once 64 KB of keepalive bodies are in
    // flight, so at unload only about 64 KB can leave; the outbox has to keep the rest.
    const { context, url } = await setup(t, { clock: true });
    const page = await open(context, url);
    const anon = await anonId(page);
    await page.evaluate(() => footfall.flush()); // the page view sent: nothing queued, nothing in flight
    await pauseClock(context, page);
    await page.evaluate(() => {
      for (let i = 0; i < 100; i++) footfall.track("big_close", { u: `bc-${i}`, pad: "y".repeat(2000) });
    });
    await page.close();
    await eventually(() => gateway.carrying("big_close").length > 0, 10000)
      .catch(() => assert.fail("nothing was sent when the tab closed"));

    const next = await open(context, url);
    const done = () => storedEvents(collector, anon).then((ev) => named(ev, "big_close").length >= 100);
    const all = await settle(context, [next], done);
    const arrived = named(await storedEvents(collector, anon), "big_close");
    assert.ok(all, `the next page load sends what the beacon could not carry; stored ${arrived.length}/100`);
    assert.deepEqual(tally(arrived), once(...range("bc-", 100)), "each stored exactly once");
    const sizes = gateway.carrying("big_close").map((b) => b.bytes);
    assert.ok(sizes.every((s) => s < BEACON_LIMIT), `every body is under 64 KB: ${sizes}`);
  });

// ---- The outbox ----

test("events tracked while the collector answers 503 are delivered once after a reload", { timeout: 90000 }, async (t) => {
  const { context, url } = await setup(t, { clock: true });
  gateway.mode = "fail";
  const page = await open(context, url);
  const anon = await anonId(page);
  await pauseClock(context, page);
  await page.evaluate(async () => {
    for (let i = 0; i < 5; i++) footfall.track("before_reload", { u: `rl-${i}` });
    await footfall.flush();
  });
  assert.ok(gateway.carrying("before_reload").every((b) => b.status === 503), "the first send got a 503");

  const sentBefore = gateway.batches.length;
  await page.reload();
  await sdkReady(page);
  // Whatever the leaving page managed to send (its beacon) is answered 503 as well.
  await eventually(() => gateway.batches.slice(sentBefore).some((b) => b.events.some((e) => e.name === "before_reload")), 3000)
    .catch(() => {});
  gateway.mode = "pass";

  const done = () => storedEvents(collector, anon).then((ev) => named(ev, "before_reload").length >= 5);
  const all = await settle(context, [page], done);
  const events = await storedEvents(collector, anon);
  assert.ok(all, `the next load sends the events not acknowledged; stored: ${JSON.stringify(tally(named(events, "before_reload")))}`);
  assert.deepEqual(tally(named(events, "before_reload")), once(...range("rl-", 5)));
  assert.equal(named(events, "$pageview").length, 2, "one page view per load, none doubled");
  assert.deepEqual(page.errors, []);
});

test("a beacon is not an acknowledgement: the next load sends the events again, stored once", { timeout: 60000 }, async (t) => {
  const { context, url, elsewhere } = await setup(t);
  const page = await open(context, url);
  const anon = await anonId(page);
  await page.evaluate(() => footfall.flush()); // the page view sent: nothing queued, nothing in flight
  await page.evaluate(() => footfall.track("beaconed", { u: "bcn-1" }));
  await page.goto(elsewhere);
  await stored(anon, (ev) => named(ev, "beaconed").length > 0);
  assert.equal(gateway.carrying("beaconed").length, 1, "the leaving page sent it once");

  await page.goto(url);
  await sdkReady(page);
  await eventually(() => gateway.carrying("beaconed").length >= 2, 15000)
    .catch(() => assert.fail("the next load did not send the beaconed event again"));
  const copies = gateway.carrying("beaconed").flatMap((b) => b.events.filter((e) => e.name === "beaconed"));
  assert.equal(new Set(copies.map((e) => e.event_id)).size, 1, "sent again with the same event_id");
  await page.evaluate(() => footfall.flush());
  const events = await storedEvents(collector, anon);
  assert.deepEqual(tally(named(events, "beaconed")), once("bcn-1"), "the collector's dedup keeps one");
});

test("two tabs with unsent events, one reloads mid-send: nothing lost, nothing stored twice",
  { timeout: 120000 }, async (t) => {
    const { context, url } = await setup(t, { clock: true });
    gateway.mode = "fail";
    const a = await open(context, url);
    const b = await open(context, url);
    const anon = await anonId(a);
    assert.equal(await anonId(b), anon, "one visitor in both tabs");
    const sentBodies = new Map();
    for (const p of [a, b]) {
      p.on("request", (r) => {
        if (new URL(r.url()).pathname === "/v1/batch") sentBodies.set(r.postDataBuffer()?.toString("base64"), p);
      });
    }
    await pauseClock(context, a, b);
    await a.evaluate(() => {
      for (let i = 0; i < 10; i++) footfall.track("tab_event", { u: `A-${i}` });
      footfall.flush();
    });
    await b.evaluate(() => {
      for (let i = 0; i < 10; i++) footfall.track("tab_event", { u: `B-${i}` });
      footfall.flush();
    });
    const refused = (prefix) => gateway.batches.some((x) => x.status === 503 &&
      x.events.some((e) => String(e.props?.u).startsWith(prefix)));
    await eventually(() => refused("A-") && refused("B-"));

    // The collector is back but slow: the next send stays in flight while its tab reloads.
    gateway.mode = "hold";
    const retried = await advance(context, [a, b], 2 * MIN, SEC, () => gateway.held.length > 0);
    assert.ok(retried, "after 503s a tab sends again within 2 simulated minutes");
    const inFlight = gateway.batches.find((x) => x.status === "held");
    const sender = await eventually(() => sentBodies.get(inFlight.raw.toString("base64")), 5000).catch(() => a);
    // While that send is in flight, its tab records more; then it reloads. The leaving page's
    // beacon and the new page's first try get 503s; the send that was in flight does reach the
    // collector, but no page is left to hear the answer.
    await sender.evaluate(() => {
      for (let i = 0; i < 5; i++) footfall.track("tab_event", { u: `L-${i}` });
    });
    gateway.mode = "fail";
    await sender.reload();
    await sdkReady(sender);
    gateway.mode = "pass";
    gateway.releaseAll();

    const wanted = [...range("A-", 10), ...range("B-", 10), ...range("L-", 5)];
    const done = () => storedEvents(collector, anon)
      .then((ev) => wanted.every((u) => named(ev, "tab_event").some((e) => e.props.u === u)));
    const all = await settle(context, [a, b], done);
    // Some more simulated time: late retries or a second drainer would show up now.
    await advance(context, [a, b], 30 * SEC, SEC);
    const events = await storedEvents(collector, anon);
    assert.ok(all, `every event of both tabs arrives; stored: ${JSON.stringify(tally(named(events, "tab_event")))}`);
    assert.deepEqual(tally(named(events, "tab_event")), once(...wanted), "each exactly once");
    assert.equal(named(events, "$pageview").length, 3, "two loads and a reload: three page views");
    assert.deepEqual([...a.errors, ...b.errors], []);
  });

test("after a crash the next load sends the outbox, and only one of two new tabs drains it",
  { timeout: 120000 }, async (t) => {
    const { context, url } = await setup(t, { clock: true });
    gateway.mode = "fail";
    const a = await open(context, url);
    const anon = await anonId(a);
    await pauseClock(context, a);
    await a.evaluate(async () => {
      for (let i = 0; i < 10; i++) footfall.track("before_crash", { u: `C-${i}` });
      await footfall.flush();
    });
    assert.ok(gateway.carrying("before_crash").length > 0, "the first send was tried (503)");
    const crashed = new Promise((r) => a.once("crash", r));
    const cdp = await context.newCDPSession(a);
    cdp.send("Page.crash").catch(() => {});
    await crashed; // no pagehide, no beacon: only localStorage is left
    await a.close();

    gateway.mode = "pass";
    const [b, c] = await Promise.all([open(context, url), open(context, url)]);
    const wanted = range("C-", 10);
    const done = () => storedEvents(collector, anon)
      .then((ev) => wanted.every((u) => named(ev, "before_crash").some((e) => e.props.u === u)));
    const all = await settle(context, [b, c], done);
    await advance(context, [b, c], 30 * SEC, SEC);
    await Promise.all([b.evaluate(() => footfall.flush()), c.evaluate(() => footfall.flush())]);
    const events = await storedEvents(collector, anon);
    assert.ok(all, `the crashed tab's events arrive from the next load; stored: ${JSON.stringify(tally(named(events, "before_crash")))}`);
    assert.deepEqual(tally(named(events, "before_crash")), once(...wanted), "each stored exactly once");

    // The collector is the safety net, not the plan: the orphaned events went out once.
    const forwarded = {};
    for (const x of gateway.batches) {
      if (typeof x.status !== "number" || x.status >= 300) continue;
      for (const e of x.events) if (e.name === "before_crash") forwarded[e.props.u] = (forwarded[e.props.u] ?? 0) + 1;
    }
    assert.deepEqual(forwarded, once(...wanted), "each orphaned event reached the collector in one request: one tab drained");
    assert.deepEqual([...b.errors, ...c.errors], []);
  });

// ---- Retries, offline, blocked ----

test("offline: events wait for the `online` event and are then sent at once, each stored once", { timeout: 60000 }, async (t) => {
  const { context, url } = await setup(t, { clock: true });
  const page = await open(context, url);
  const anon = await anonId(page);
  await pauseClock(context, page);
  await page.evaluate(() => footfall.flush()); // the page view, out of the way

  await context.setOffline(true);
  assert.equal(await page.evaluate(() => navigator.onLine), false);
  await page.evaluate(() => {
    for (let i = 0; i < 5; i++) footfall.track("while_offline", { u: `off-${i}` });
    footfall.flush();
  });
  await advance(context, [page], 2 * MIN, 5 * SEC); // two offline minutes
  assert.equal(named(await storedEvents(collector, anon), "while_offline").length, 0, "nothing got through offline");

  await context.setOffline(false);
  // "At once": the clock moves at most 200 ms (for a zero-delay timer), far below any backoff.
  let moved = 0;
  const events = await eventually(async () => {
    if (moved < 200) {
      await context.clock.runFor(20);
      moved += 20;
    }
    const ev = await storedEvents(collector, anon);
    return named(ev, "while_offline").length >= 5 && ev;
  }, 10000).catch(() => null);
  assert.ok(events, "back online, the queued events are sent without waiting for a retry timer");
  assert.deepEqual(tally(named(events, "while_offline")), once(...range("off-", 5)));
  assert.deepEqual(page.errors, []);
});

test("500, 500, 500, then 429 Retry-After: 30 → backoff, no send for 30 s, delivered once", { timeout: 120000 }, async (t) => {
  // Default options and no flush(): every attempt after the first is the SDK's own retry.
  const { context, url } = await setup(t, { clock: true, attrs: {} });
  const attempts = []; // { n, sentAt, ids, answer }
  let pending = 0;
  const page = await open(context, url, (p) => p.route("**/v1/batch", async (route) => {
    pending++;
    try {
      const n = attempts.length + 1;
      const { sentAt, events } = decodeEvents(route.request().postDataBuffer() ?? Buffer.alloc(0));
      const rec = { n, sentAt, ids: events.map((e) => e.event_id), answer: null };
      attempts.push(rec);
      const headers = cors(route.request().headers().origin);
      if (n <= 3) {
        rec.answer = 500;
        await route.fulfill({ status: 500, contentType: "application/json", headers, body: '{"error":{"code":"internal","message":"test"}}' });
      } else if (n === 4) {
        rec.answer = 429;
        await route.fulfill({
          status: 429, contentType: "application/json", headers: { ...headers, "Retry-After": "30" },
          body: '{"error":{"code":"rate-limited","message":"test"}}',
        });
      } else {
        rec.answer = "collector";
        await route.continue();
      }
    } finally {
      pending--;
    }
  }));
  const anon = await anonId(page);
  await pauseClock(context, page);
  await page.evaluate(() => footfall.track("retried", { u: "retry-1" }));

  const reached = await advance(context, [page], 3 * MIN, SEC,
    () => pending === 0 && attempts.some((a) => a.answer === "collector"));
  const log = () => attempts.map((a) => `#${a.n} +${a.sentAt - attempts[0].sentAt} ms → ${a.answer}`).join(", ");
  assert.ok(reached, `the SDK retries until the collector is reached (within 3 simulated minutes): ${log()}`);
  await advance(context, [page], 30 * SEC, SEC); // nothing more should be sent

  const [first, second, third, fourth, fifth] = attempts;
  const gap = (x, y) => y.sentAt - x.sentAt;
  assert.ok(gap(first, second) >= 500 && gap(first, second) <= 3500, `first retry after ~1–2 s: ${log()}`);
  assert.ok(gap(second, third) >= 500 && gap(third, fourth) >= 500, `no immediate retries: ${log()}`);
  assert.ok(gap(third, fourth) > gap(first, second), `the backoff grows: ${log()}`);
  assert.ok(gap(fourth, fifth) >= 30 * SEC, `no send sooner than Retry-After (30 s) after the 429: ${log()}`);
  assert.ok(gap(fourth, fifth) <= 3 * MIN, `and not much later either: ${log()}`);
  const ids = attempts.filter((a) => a.answer === "collector").flatMap((a) => a.ids);
  assert.equal(ids.length, new Set(ids).size, `once acknowledged, nothing is sent again: ${log()}`);

  const events = await stored(anon, (ev) => named(ev, "retried").length > 0);
  assert.deepEqual(tally(named(events, "retried")), once("retry-1"));
  assert.equal(named(events, "$pageview").length, 1);
  assert.deepEqual(page.errors, []);
});

test("a blocked endpoint: attempts stop, the outbox stays bounded, the page is unharmed", { timeout: 180000 }, async (t) => {
  const { context, url } = await setup(t, { clock: true, attrs: {} }); // default batch size and interval
  let attempts = 0;
  const page = await open(context, url, (p) => p.route("**/v1/batch", (route) => {
    attempts++;
    return route.abort("blockedbyclient"); // what an ad blocker does: fails at once
  }));
  const anon = await anonId(page);
  await pauseClock(context, page);
  for (let chunk = 0; chunk < 12; chunk++) {
    const allUndefined = await page.evaluate((from) => {
      let ok = true;
      for (let i = from; i < from + 250; i++) {
        ok = footfall.track("bulk", { u: `n-${i}`, n: i, pad: "z".repeat(120) }) === undefined && ok;
      }
      return ok;
    }, chunk * 250);
    assert.ok(allUndefined, "track() returns undefined");
  }
  await advance(context, [page], 10 * MIN, 10 * SEC);
  assert.ok(attempts >= 1, "the SDK did try");
  assert.ok(attempts <= 6, `at most a handful of attempts over the page's life, got ${attempts}`);

  const size = await localStorageChars(page);
  assert.ok(size <= 640 * 1024, `localStorage stays bounded (~512 KB outbox): ${size} chars after 3,000 events`);
  assert.ok(size >= 50 * 1024, `the outbox keeps the newest events: ${size} chars`);
  assert.equal(await page.evaluate(() => footfall.track("still_alive", { u: "alive" })), undefined);
  assert.match(await anonId(page), /^[0-9a-f-]{36}$/, "the SDK still answers");
  assert.deepEqual(page.errors, [], "no error reached the page");

  // Unblocked, the next load sends what the bounded outbox kept: the newest events.
  await page.unroute("**/v1/batch");
  await page.reload();
  await sdkReady(page);
  const drained = await settle(context, [page],
    async () => (await localStorageChars(page)) < 16 * 1024 &&
      (await storedEvents(collector, anon)).some((e) => e.name === "still_alive"));
  assert.ok(drained, "the next load drains the outbox");
  const ns = named(await storedEvents(collector, anon), "bulk").map((e) => e.props.n).sort((x, y) => x - y);
  assert.ok(ns.length >= 100 && ns.length <= 1000, `about 1,000 events at most were kept: ${ns.length}`);
  assert.equal(ns.at(-1), 2999, "the newest kept");
  assert.ok(!ns.includes(0), "the oldest dropped");
  assert.deepEqual(ns, ns.map((_, i) => ns[0] + i), "the kept events are the newest, without gaps or repeats");
});

test("a 400 drops the batch with one console.warn; later events still go", { timeout: 60000 }, async (t) => {
  const { context, url } = await setup(t);
  const page = await open(context, url);
  const anon = await anonId(page);
  await page.evaluate(() => footfall.flush()); // the page view, out of the way
  gateway.mode = (rec) => rec.events.some((e) => e.name === "refused")
    ? { status: 400, body: { error: { code: "bad-request", message: "test gateway: refused" } } }
    : "pass";
  const warningsBefore = page.warnings.length;
  await page.evaluate(async () => {
    footfall.track("refused", { u: "r-1" });
    await footfall.flush();
  });
  await page.evaluate(async () => {
    footfall.track("after_refusal", { u: "r-2" });
    await footfall.flush();
  });
  const events = await stored(anon, (ev) => named(ev, "after_refusal").length > 0);
  assert.deepEqual(tally(named(events, "after_refusal")), once("r-2"));
  assert.equal(named(events, "refused").length, 0);
  assert.equal(gateway.carrying("refused").length, 1, "the refused batch is not retried");
  assert.equal(page.warnings.length - warningsBefore, 1, `one console.warn: ${JSON.stringify(page.warnings)}`);
  assert.match(page.warnings.at(-1), /footfall/i);

  // Dropped from the outbox as well: the next load does not send it again.
  await page.reload();
  await sdkReady(page);
  await page.evaluate(() => footfall.flush());
  assert.equal(gateway.carrying("refused").length, 1, "not sent again on the next load");
  assert.deepEqual(page.errors, []);
});

// ---- flush() ----

test("flush() resolves once the events queued at the call are acknowledged, or the send failed", { timeout: 60000 }, async (t) => {
  const { context, url } = await setup(t);
  const page = await open(context, url);
  const anon = await anonId(page);
  gateway.mode = "hold";
  await page.evaluate(() => {
    window.resolved = [];
    footfall.track("flush_one", { u: "f-1" });
    footfall.flush().then(() => resolved.push("one"));
  });
  await eventually(() => gateway.held.length >= 1, 5000);
  await page.evaluate(() => {
    footfall.track("flush_two", { u: "f-2" });
    footfall.flush().then(() => resolved.push("two"));
  });
  await sleep(500); // a moment in which nothing may resolve
  assert.deepEqual(await page.evaluate(() => resolved), [],
    "neither flush() resolved while the collector had not answered");

  gateway.mode = "pass";
  gateway.releaseAll();
  await eventually(() => page.evaluate(() => resolved.includes("one")));
  assert.equal(named(await storedEvents(collector, anon), "flush_one").length, 1,
    "when the first flush() resolved, its event was stored");
  await eventually(() => page.evaluate(() => resolved.includes("two")));
  assert.equal(named(await storedEvents(collector, anon), "flush_two").length, 1,
    "when the second flush() resolved, its event was stored");

  gateway.mode = "fail";
  const outcome = await page.evaluate(() => {
    footfall.track("flush_fails", { u: "f-3" });
    return Promise.race([
      footfall.flush().then(() => "resolved", () => "rejected"),
      new Promise((r) => setTimeout(() => r("still pending after 5 s"), 5000)),
    ]);
  });
  assert.equal(outcome, "resolved", "a failed send resolves flush() (the events stay queued)");
  assert.deepEqual(page.errors, []);
});

test("back-to-back ~60 KB batches to a healthy collector all arrive; no false \"blocked\"", { timeout: 120000 }, async (t) => {
  // Chromium keeps a keepalive request's body counted against a 64 KB budget until its response
  // is consumed: a live page that sends big batches one after another must not read the
  // instant refusals that follow as an ad blocker.
  const { context, url } = await setup(t, { clock: true, attrs: {} }); // default batch size and interval
  const page = await open(context, url);
  const anon = await anonId(page);
  await page.evaluate(() => footfall.flush());
  await pauseClock(context, page);
  // ~350 KB: within the outbox bound (512 KB), six batches of 20 events just under 60 KB each.
  await page.evaluate(() => {
    for (let i = 0; i < 120; i++) footfall.track("heavy", { u: `h-${i}`, pad: "w".repeat(2500) });
  });
  const done = () => storedEvents(collector, anon).then((ev) => named(ev, "heavy").length >= 120);
  const all = await settle(context, [page], done);
  const events = named(await storedEvents(collector, anon), "heavy");
  assert.ok(all, `every event arrives; stored ${events.length}/120; warnings: ${JSON.stringify(page.warnings)}`);
  assert.deepEqual(tally(events), once(...range("h-", 120)));
  assert.deepEqual(page.warnings.filter((w) => /block/i.test(w)), [], "no warning that the collector is blocked");
  assert.deepEqual(page.errors, []);
});

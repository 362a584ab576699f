// Delivery loss: how many tracked events never reach the collector when pages end abruptly.
// A real collector and Debian's Chromium; N pages (script-tag SDK, default options) spread over
// a few browser contexts each do random things — `footfall.track("loss", {k})` calls with random
// small pauses and bursts, clicks, pushState navigations — and then end at once, in one of several
// ways (closed, closed after beforeunload, navigated to another origin, to about:blank, reloaded,
// or the renderer crashed — that one in a context of its own, followed by a next visit of the site
// in the same profile, because product.md says unacknowledged events are sent on the next load).
//
// The truth is kept on this side, not in the page: every track call carries a unique `k`
// ("<page>-<n>") and counts as made once page.evaluate() returned. Afterwards the collector's
// query API is polled (bounded, 20 s) for the stored "loss" events, and the two sets compared.
// It is a measurement: it exits 0 whatever the loss, 1 only when the harness itself broke.
//
// With LOSS_VISITORS=never-return, every page is a visitor who never comes back: a fresh
// profile (browser context) of its own, one `track` made right after the page's load event
// (before the SDK's wasm is ready, so the call waits in the script tag's queue) or right after
// the SDK is ready, and the page ended at once by closing, closing after beforeunload, or
// navigating to another origin. Nothing is ever sent by a next visit: what the page did not get
// out as it went is lost. The profile's browser context stays open LOSS_LINGER_MS (3 s) after its
// page ended, as a visitor's browser keeps running after one tab closed: closing the context at
// once would also cancel the beacons and keepalive requests the page handed to the browser.
//
// Run: node bench/loss.mjs
// Env: LOSS_PAGES (default 30), LOSS_CONTEXTS (4), LOSS_CONCURRENCY (pages at once, 6),
//      LOSS_VISITORS (`never-return`, or unset for the mixed pages above),
//      LOSS_LINGER_MS (3000: how long a page's own context stays open after the page ended),
//      LOSS_WHEN (never-return only: `load` or `ready` to track only at that moment; default both),
//      LOSS_SEED (default: random; printed, to replay a run), FOOTFALL_COLLECTOR_BIN, CHROMIUM.
// Takes about 30–60 s at the defaults; hard limit 3 min plus 3 s a page (a loaded machine runs
// never-returning pages, a fresh context each, at about 1.5 s a page with 8 at a time).
import { startCollector, startSite, launchChromium, serveTestPage, sdkReady } from "../tests/e2e/harness.mjs";

const PAGES = Number(process.env.LOSS_PAGES ?? 30);
const CONTEXTS = Math.max(1, Math.min(PAGES, Number(process.env.LOSS_CONTEXTS ?? 4)));
const CONCURRENCY = Math.max(1, Number(process.env.LOSS_CONCURRENCY ?? 6));
const SEED = Number(process.env.LOSS_SEED ?? Math.floor(Math.random() * 2 ** 31));
const SETTLE_MS = 20_000;
const NEVER_RETURN = process.env.LOSS_VISITORS === "never-return";
const ENDINGS = NEVER_RETURN
  ? ["close", "close-after-beforeunload", "other-origin"]
  : ["close", "close-after-beforeunload", "other-origin", "about-blank", "reload", "crash"];
const OTHER_ORIGIN = "http://other-origin.invalid";
const LINGER_MS = Number(process.env.LOSS_LINGER_MS ?? 3000);
const WHENS = { load: ["right after load"], ready: ["right after ready"] }[process.env.LOSS_WHEN] ??
  ["right after load", "right after ready"];

const LIMIT_MS = 180_000 + 3_000 * PAGES;
const watchdog = setTimeout(() => {
  console.error(`loss: the harness gave up after ${LIMIT_MS / 1000} s`);
  process.exit(1);
}, LIMIT_MS);
watchdog.unref();

/** mulberry32: a small seeded PRNG, so a run can be replayed with LOSS_SEED. */
function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const rand = prng(SEED);
const int = (lo, hi) => lo + Math.floor(rand() * (hi - lo + 1));
const pick = (xs) => xs[Math.floor(rand() * xs.length)];
/** How each page ends: every way about as often, in a seeded random order. */
const endingOf = Array.from({ length: PAGES }, (_, i) => ENDINGS[i % ENDINGS.length]);
for (let i = endingOf.length - 1; i > 0; i--) {
  const j = Math.floor(rand() * (i + 1));
  [endingOf[i], endingOf[j]] = [endingOf[j], endingOf[i]];
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const pct = (n, d) => (d ? `${((100 * n) / d).toFixed(2)} %` : "n/a");
const secs = (ms) => `${(ms / 1000).toFixed(1)} s`;

/** A browser context with the test page (served by the site, on an origin of its own) and a
 *  page on another origin routed in it. */
async function newContext(browser, site) {
  const context = await browser.newContext();
  const url = await serveTestPage(context, site);
  await context.route(`${OTHER_ORIGIN}/**`, (route) =>
    route.fulfill({ status: 200, contentType: "text/html", body: "<!doctype html><title>elsewhere</title><p>elsewhere</p>" }));
  return { context, url };
}

/** Every expected k: its page, how that page ended, when it was tracked (epoch ms). */
const expected = new Map();
const pageLog = [];

/** A never-returning visitor's page: load, one `track` right after the load event or right
 *  after the SDK is ready, and the end at once. */
async function visitOnce(context, url, index) {
  const ending = endingOf[index];
  const when = WHENS[Math.floor(rand() * WHENS.length)];
  const page = await context.newPage();
  const log = { index, ending, when, tracked: 0, startedAt: Date.now(), endedAt: 0 };
  pageLog.push(log);
  await page.goto(url);
  if (when === "right after ready") await sdkReady(page);
  const k = `${index}-0`;
  await page.evaluate((k) => footfall.track("loss", { k }), k);
  expected.set(k, { page: index, ending, when, at: Date.now() });
  log.tracked = 1;
  log.endedAt = Date.now();
  await endPage(page, ending, context, url);
}

/** One page's life: load, random actions, abrupt end. Returns when the page has ended. */
async function livePage(context, url, index) {
  // Decide everything up front from the seeded generator, so the plan does not depend on timing.
  const ending = endingOf[index];
  const steps = [];
  const nSteps = int(3, 14);
  for (let s = 0; s < nSteps; s++) {
    const r = rand();
    if (r < 0.55) steps.push({ kind: "track", pause: int(0, 250) });
    else if (r < 0.7) steps.push({ kind: "burst", count: int(5, 30), pause: int(0, 150) });
    else if (r < 0.85) steps.push({ kind: "click", target: pick(["#buy", "#noop"]), pause: int(0, 200) });
    else steps.push({ kind: "pushState", pause: int(0, 200) });
  }
  const lastPause = pick([0, 0, 0, 20, 200, 1000]); // mostly: end right after the last call

  const page = await context.newPage();
  const log = { index, ending, tracked: 0, startedAt: Date.now(), endedAt: 0 };
  pageLog.push(log);
  await page.goto(url);
  await sdkReady(page);
  let n = 0;
  const remember = (ks) => {
    const at = Date.now();
    for (const k of ks) expected.set(k, { page: index, ending, at });
    log.tracked += ks.length;
  };
  for (const step of steps) {
    await sleep(step.pause);
    if (step.kind === "track") {
      const k = `${index}-${n++}`;
      await page.evaluate((k) => footfall.track("loss", { k }), k);
      remember([k]);
    } else if (step.kind === "burst") {
      const ks = Array.from({ length: step.count }, () => `${index}-${n++}`);
      await page.evaluate((ks) => ks.forEach((k) => footfall.track("loss", { k })), ks);
      remember(ks);
    } else if (step.kind === "click") {
      await page.click(step.target, { timeout: 5000 });
    } else {
      await page.evaluate((p) => history.pushState({}, "", p), `/t/step-${index}-${n}.html`);
    }
  }
  await sleep(lastPause);
  log.endedAt = Date.now();
  await endPage(page, ending, context, url);
}

/** Ends a page as `ending` says, at once. */
async function endPage(page, ending, context, url) {
  switch (ending) {
    case "close":
      await page.close();
      break;
    case "close-after-beforeunload": {
      const closed = new Promise((r) => page.once("close", r));
      await page.close({ runBeforeUnload: true });
      await Promise.race([closed, sleep(5000)]);
      break;
    }
    case "other-origin":
      await page.goto(`${OTHER_ORIGIN}/bye.html`);
      break;
    case "about-blank":
      await page.goto("about:blank");
      break;
    case "reload":
      // The reloaded page runs the SDK again; it stays open until its context closes.
      await page.reload();
      break;
    case "crash": {
      // The renderer dies: no pagehide, no beacon. (This page has a context, so a renderer
      // process, of its own: the crash takes no other page with it.)
      const cdp = await context.newCDPSession(page);
      const crashed = new Promise((r) => page.once("crash", r));
      cdp.send("Page.crash").catch(() => {});
      await Promise.race([crashed, sleep(5000)]);
      await page.close().catch(() => {});
      // The visitor comes back: one more page load of the site in the same profile.
      const again = await context.newPage();
      await again.goto(url);
      await sdkReady(again);
      await sleep(1500);
      await again.close();
      break;
    }
  }
}

/** Every stored "loss" event's k, counted, read through the users feed and each user's timeline. */
async function storedKs(collector) {
  const counts = new Map();
  let cursor = null;
  do {
    const q = `/api/v1/users?last=1d&limit=1000${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`;
    const r = await collector.api(q);
    if (r.status !== 200) throw new Error(`GET ${q}: ${r.status} ${JSON.stringify(r.body)}`);
    for (const u of r.body.users) {
      const d = await collector.api(`/api/v1/users/${encodeURIComponent(u.id)}`);
      if (d.status !== 200) throw new Error(`GET /api/v1/users/${u.id}: ${d.status}`);
      for (const s of d.body.sessions) {
        for (const e of s.events) {
          if (e.name === "loss" && e.props?.k != null) counts.set(e.props.k, (counts.get(e.props.k) ?? 0) + 1);
        }
      }
    }
    cursor = r.body.next_cursor;
  } while (cursor);
  return counts;
}

// All pages come from one IP here; the collector's per-client rate limit (600 batches/min by
// default) is meant for one visitor, so it is turned off to measure the SDK's delivery alone.
// The bench reads every person back through the query API from one address, past its rate
// limit too.
const collector = await startCollector(["--rate-limit", "0", "--query-rate-limit", "0"]);
const site = await startSite(collector.url);
let browser;
let exitCode = 0;
try {
  browser = await launchChromium();
  const t0 = Date.now();
  console.log(`loss: ${PAGES} pages over ${CONTEXTS} browser contexts (and one more per crash page), ${CONCURRENCY} at a time, ` +
    `a page's own context closed ${LINGER_MS} ms after the page ended, ` +
    `seed ${SEED} (LOSS_SEED=${SEED} replays the plan), Chromium ${browser.version()}`);

  const contexts = [];
  for (let c = 0; c < (NEVER_RETURN ? 0 : CONTEXTS); c++) contexts.push(await newContext(browser, site));
  let next = 0;
  let done = 0;
  const started = Date.now();
  const harnessErrors = [];
  const lingering = [];
  await Promise.all(Array.from({ length: Math.min(CONCURRENCY, PAGES) }, async () => {
    while (next < PAGES) {
      const i = next++;
      const own = NEVER_RETURN || endingOf[i] === "crash" ? await newContext(browser, site) : null;
      const { context, url } = own ?? contexts[i % CONTEXTS];
      try {
        await (NEVER_RETURN ? visitOnce : livePage)(context, url, i);
      } catch (e) {
        harnessErrors.push(`page ${i}: ${e.message.split("\n")[0]}`);
      }
      if (own) lingering.push(sleep(LINGER_MS).then(() => own.context.close()));
      done++;
      if (done % 100 === 0 || done === PAGES) {
        console.log(`  ${done} of ${PAGES} pages ended (${((Date.now() - started) / 1000).toFixed(0)} s)`);
      }
    }
  }));
  await Promise.all(lingering);
  // Pages that reloaded are still open: closing the contexts ends them (like closing the window).
  for (const { context } of contexts) await context.close();
  const tEnded = Date.now();
  if (harnessErrors.length) {
    console.error(`harness errors (${harnessErrors.length}):\n  ${harnessErrors.join("\n  ")}`);
    if (harnessErrors.length > PAGES / 10) throw new Error("too many pages failed to run; no measurement");
  }

  // Poll until every k is stored or SETTLE_MS passes.
  let counts = new Map();
  let lastChange = tEnded;
  let lastSize = -1;
  while (Date.now() - tEnded < SETTLE_MS) {
    counts = await storedKs(collector);
    const size = [...counts.values()].reduce((a, b) => a + b, 0);
    if (size !== lastSize) [lastSize, lastChange] = [size, Date.now()];
    if ([...expected.keys()].every((k) => counts.has(k))) break;
    await sleep(500);
  }
  const tDone = Date.now();

  const lost = [...expected.keys()].filter((k) => !counts.has(k));
  const dupCount = [...counts.entries()].filter(([k]) => expected.has(k)).reduce((a, [, c]) => a + c - 1, 0);
  const dupKeys = [...counts.entries()].filter(([, c]) => c > 1).length;
  const unexpected = [...counts.keys()].filter((k) => !expected.has(k));
  const total = expected.size;

  console.log(`\ntracked: ${total} "loss" events on ${pageLog.length} pages (${pageLog.filter((p) => p.tracked).length} pages tracked at least one)`);
  console.log(`stored:  ${counts.size} distinct k, ${[...counts.values()].reduce((a, b) => a + b, 0)} events`);
  console.log(`LOST:        ${lost.length} of ${total} events (${pct(lost.length, total)})`);
  console.log(`DUPLICATED:  ${dupCount} extra copies of ${dupKeys} events (${pct(dupCount, total)} of tracked)`);
  if (unexpected.length) console.log(`stored but never tracked (should be 0): ${unexpected.length} events`);
  // Copies that reached the collector and were dropped by its `event_id` dedup (the safety
  // net): beacons at page end whose events the next page load sends again, by design.
  const metrics = await fetch(`${collector.url}/metrics`).then((r) => r.text()).catch(() => "");
  const received = Number(/^footfall_events_duplicate_total (\d+)/m.exec(metrics)?.[1] ?? NaN);
  const accepted = Number(/^footfall_events_accepted_total (\d+)/m.exec(metrics)?.[1] ?? NaN);
  console.log(`RECEIVED TWICE: ${received} copies dropped by the collector's dedup, of ${accepted} events accepted ` +
    `(all kinds, page views too: ${pct(received, accepted)})`);

  console.log("\nby how the page ended:");
  for (const ending of ENDINGS) {
    const ks = [...expected.entries()].filter(([, v]) => v.ending === ending).map(([k]) => k);
    const pages = pageLog.filter((p) => p.ending === ending).length;
    const l = ks.filter((k) => !counts.has(k)).length;
    const lostPages = new Set(ks.filter((k) => !counts.has(k)).map((k) => expected.get(k).page)).size;
    console.log(`  ${ending.padEnd(26)} ${String(pages).padStart(3)} pages, ${String(ks.length).padStart(4)} events, ` +
      `lost ${String(l).padStart(4)} (${pct(l, ks.length)}) on ${lostPages} pages`);
  }
  if (NEVER_RETURN) {
    console.log("\nby when the visitor tracked:");
    for (const when of ["right after load", "right after ready"]) {
      const ks = [...expected.entries()].filter(([, v]) => v.when === when).map(([k]) => k);
      const l = ks.filter((k) => !counts.has(k)).length;
      console.log(`  ${when.padEnd(18)} ${String(ks.length).padStart(5)} events, lost ${String(l).padStart(4)} (${pct(l, ks.length)})`);
    }
  }
  console.log("\nby how long before its page ended the event was tracked:");
  const ends = new Map(pageLog.map((p) => [p.index, p.endedAt]));
  for (const [lo, hi, label] of [[0, 500, "< 0.5 s"], [500, 5000, "0.5–5 s"], [5000, Infinity, "≥ 5 s"]]) {
    const ks = [...expected.entries()].filter(([, v]) => {
      const before = ends.get(v.page) - v.at;
      return before >= lo && before < hi;
    }).map(([k]) => k);
    const l = ks.filter((k) => !counts.has(k)).length;
    console.log(`  ${label.padEnd(8)} ${String(ks.length).padStart(5)} events, lost ${String(l).padStart(4)} (${pct(l, ks.length)})`);
  }
  if (lost.length) console.log(`\nsome lost k: ${lost.slice(0, 12).join(", ")}${lost.length > 12 ? ", …" : ""}`);

  console.log(`\ntime: pages ran ${secs(tEnded - t0)}; after the last page ended, the stored count last changed ` +
    `after ${secs(Math.max(0, lastChange - tEnded))}, polling stopped after ${secs(tDone - tEnded)} ` +
    `(limit ${secs(SETTLE_MS)}); total ${secs(tDone - t0)}`);
} catch (e) {
  console.error(`loss: the harness broke: ${e.stack ?? e}`);
  exitCode = 1;
} finally {
  await browser?.close().catch(() => {});
  await site.close();
  await collector.stop();
}
process.exit(exitCode);

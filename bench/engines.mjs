// The SDK per engine (issue #20): Chromium, Firefox ESR and WebKitGTK's MiniBrowser, driven as
// in tests/e2e/engines.test.mjs (tests/e2e/engines/), against the release collector, the page on
// another origin than the collector (harness.startSite), with default options. Three numbers:
//
// - load to ready: from the navigation's start (performance.timeOrigin) to the moment the SDK
//   replaced the loader's queue and started (the script-tag build assigns window.footfall; a
//   setter on the page records performance.now() in the microtask after that assignment, so the
//   start of the SDK is included). The first load of a fresh profile (nothing cached), then
//   reloads (the SDK's files from the HTTP cache: 5 minutes).
// - track() cost: 50 bursts of 100 calls (`footfall.track("bench", {i, plan: "pro"})`), each
//   burst timed with performance.now() and divided by 100 (engines coarsen the clock: Firefox
//   and WebKit to 1 ms or so, Chromium to 100 µs; a burst lasts well over that), after 200
//   warm-up calls. The median and the p90 of the per-call means.
// - instant close: 20 times, a new tab, the SDK ready, flush() (the page view out of the way),
//   one track(), and the tab closed at once; how many of those 20 events the collector stored
//   (waiting up to 10 s), and how many of their pages' $pageleave events.
//
// Run: node bench/engines.mjs   (after `cargo xtask dist`; env: FOOTFALL_COLLECTOR_BIN,
// FOOTFALL_ENGINES=chromium,firefox,webkit). Bounded: about 2–3 min in all, hard limit 8 min.
import { startCollector, startSite, testPageHtml, storedEvents, ROOT } from "../tests/e2e/harness.mjs";
import { ENGINES, launchEngine } from "../tests/e2e/engines/index.mjs";
import { join } from "node:path";

process.env.FOOTFALL_COLLECTOR_BIN ??= join(ROOT, "target", "dist", "footfall-collector");
const LOADS = 10; // 1 cold + 9 warm
const BURSTS = 50;
const BURST = 100;
const CLOSES = 20;

const watchdog = setTimeout(() => {
  console.error("engines bench: gave up after 8 min");
  process.exit(2);
}, 8 * 60_000);
watchdog.unref();

const wanted = (process.env.FOOTFALL_ENGINES || ENGINES.join(",")).split(",").map((s) => s.trim()).filter(Boolean);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const median = (v) => [...v].sort((a, b) => a - b)[Math.floor((v.length - 1) / 2)];
const pct = (v, p) => [...v].sort((a, b) => a - b)[Math.min(v.length - 1, Math.ceil((p / 100) * v.length) - 1)];

/** Records when the SDK replaced the loader's queue (before the loader snippet runs). */
const READY_PROBE = `<script>(function () {
  var value;
  Object.defineProperty(window, "footfall", { configurable: true, get: function () { return value; },
    set: function (v) { value = v; if (v && !v.q) queueMicrotask(function () { window.__readyAt = performance.now(); }); } });
})();</script>`;

async function waitFor(tab, fn, ms = 15000) {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    const v = await tab.evaluate(fn).catch(() => null);
    if (v) return v;
    await sleep(20);
  }
  throw new Error("not within the time allowed");
}
const ready = (tab) => waitFor(tab, () => typeof window.footfall?.getAnonymousId === "function" &&
  !window.footfall.q && !!window.footfall.getAnonymousId());

const collector = await startCollector(["--rate-limit", "0"]);
const site = await startSite(collector.url);
const plain = testPageHtml(collector.url);
const probed = plain.replace("<head>", `<head>${READY_PROBE}`);
const loadUrl = site.page("/bench/load.html", probed);
const pageUrl = site.page("/bench/page.html", plain);
const rows = [];
try {
  for (const name of wanted) {
    const engine = await launchEngine(name);
    try {
      // Load to ready.
      const profile = await engine.newProfile();
      const loads = [];
      const tab = await profile.open(loadUrl);
      for (let i = 0; i < LOADS; i++) {
        if (i > 0) await tab.reload();
        loads.push(await waitFor(tab, () => window.__readyAt));
      }
      // track() cost, on the same page.
      await ready(tab);
      const perCall = await tab.evaluate(async ([bursts, burst]) => {
        const channel = new MessageChannel();
        const yieldNow = () => new Promise((r) => { channel.port1.onmessage = r; channel.port2.postMessage(0); });
        let n = 0;
        for (let i = 0; i < 200; i++) footfall.track("bench", { i: n++, plan: "pro" });
        await yieldNow();
        const out = [];
        for (let b = 0; b < bursts; b++) {
          const t0 = performance.now();
          for (let j = 0; j < burst; j++) footfall.track("bench", { i: n++, plan: "pro" });
          out.push(((performance.now() - t0) / burst) * 1000);
          await yieldNow();
        }
        return out;
      }, [BURSTS, BURST]);
      await profile.close();

      // Instant close, each in a fresh profile's new tab.
      const anons = [];
      for (let i = 0; i < CLOSES; i++) {
        const p = await engine.newProfile();
        try {
          const t = await p.open(pageUrl);
          await ready(t);
          await t.evaluate(() => footfall.flush().then(() => true));
          anons.push(await t.evaluate(() => {
            footfall.track("instant_close");
            return footfall.getAnonymousId();
          }));
          await t.close();
        } finally {
          await p.close();
        }
      }
      const until = Date.now() + 10000;
      let delivered = 0;
      let leaves = 0;
      do {
        const events = await Promise.all(anons.map((a) => storedEvents(collector, a)));
        delivered = events.filter((ev) => ev.some((e) => e.name === "instant_close")).length;
        leaves = events.filter((ev) => ev.some((e) => e.name === "$pageleave")).length;
        if (delivered === CLOSES && leaves === CLOSES) break;
        await sleep(250);
      } while (Date.now() < until);

      const row = {
        engine: `${name} ${engine.version}`,
        cold: loads[0],
        warm: median(loads.slice(1)),
        trackMedian: median(perCall),
        trackP90: pct(perCall, 90),
        delivered,
        leaves,
      };
      rows.push(row);
      console.log(`${row.engine}: load to ready ${row.cold.toFixed(0)} ms cold, ${row.warm.toFixed(0)} ms warm (median of ${LOADS - 1}); ` +
        `track() ${row.trackMedian.toFixed(1)} µs median, ${row.trackP90.toFixed(1)} µs p90 (per call, bursts of ${BURST}); ` +
        `instant close ${delivered}/${CLOSES} events, ${leaves}/${CLOSES} $pageleave`);
    } finally {
      await engine.close();
    }
  }
  const date = new Date().toISOString().slice(0, 10);
  console.log(`\nBENCHMARKS.md rows (${date}):`);
  console.log("| engine | load to ready, cold | warm (median) | track(): median per call | p90 | instant close: events | $pageleave |");
  for (const r of rows) {
    console.log(`| ${r.engine} | ${r.cold.toFixed(0)} ms | ${r.warm.toFixed(0)} ms | ${r.trackMedian.toFixed(1)} µs | ` +
      `${r.trackP90.toFixed(1)} µs | ${r.delivered}/${CLOSES} | ${r.leaves}/${CLOSES} |`);
  }
} finally {
  await site.close();
  await collector.stop();
}
process.exit(0);

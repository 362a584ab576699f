// What one `footfall.track()` call costs the host page: the script-tag SDK in Debian's
// Chromium, loaded from a real collector, with default options (so batches of 20 do go out to
// the collector between measurements, as on a real page).
//
// Run: node bench/track-cost.mjs        (env: FOOTFALL_COLLECTOR_BIN, CHROMIUM)
// Takes about 45 s on the 2-core dev machine; stops by itself (hard limit 3 min).
//
// Two ways of timing, because Chromium coarsens `performance.now()`: to 100 µs (plus jitter)
// on a page that is not cross-origin isolated, to 5 µs on one that is (COOP + COEP headers).
// - single: 10,000 calls each timed on its own. Only meaningful where the clock is finer than
//   a call; reported for both kinds of page.
// - batch: 100 batches of 100 calls, each batch timed and divided by 100. Per-call cost is
//   then far above the clock's step, so the median is trustworthy on any page; its p99 is the
//   p99 of 100-call averages (it smooths out single slow calls, it does not show them).
import { startCollector, launchChromium, sdkReady, LOADER_SNIPPET } from "../tests/e2e/harness.mjs";

const SINGLE_CALLS = 10_000;
const BATCHES = 100;
const BATCH_SIZE = 100;
const WARM_UP = 500;

const watchdog = setTimeout(() => {
  console.error("track-cost: gave up after 180 s");
  process.exit(2);
}, 180_000);
watchdog.unref();

/** Nearest-rank percentile of `values` (any order), `p` in 0..100. */
function percentile(values, p) {
  const sorted = Float64Array.from(values).sort();
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}
const mean = (v) => v.reduce((a, b) => a + b, 0) / v.length;
const us = (ms) => `${(ms * 1000).toFixed(2)} µs`;

/** A minimal page with the loader snippet and the script tag, on the collector's origin. */
async function openPage(browser, collectorUrl, isolated) {
  const context = await browser.newContext();
  const headers = isolated
    ? { "cross-origin-opener-policy": "same-origin", "cross-origin-embedder-policy": "require-corp" }
    : {};
  const html = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>track cost</title>
<link rel="icon" href="data:,"><script>${LOADER_SNIPPET}</script>
<script async src="/sdk/footfall.js" data-key="demo"></script></head><body><h1>bench</h1></body></html>`;
  await context.route(`${collectorUrl}/bench/**`, (route) =>
    route.fulfill({ status: 200, contentType: "text/html; charset=utf-8", headers, body: html }));
  const page = await context.newPage();
  const problems = [];
  page.on("pageerror", (e) => problems.push(e.message));
  page.on("console", (m) => m.type() !== "log" && problems.push(`${m.type()}: ${m.text()}`));
  await page.goto(`${collectorUrl}/bench/page.html`);
  await sdkReady(page);
  return { context, page, problems };
}

/** Runs in the page: the timer's step, then the single-call and batch measurements (ms). */
function measureInPage({ singleCalls, batches, batchSize, warmUp }) {
  // Yield to the event loop (so the SDK's sends run) without setTimeout's 4 ms clamp.
  const channel = new MessageChannel();
  const yieldNow = () => new Promise((r) => { channel.port1.onmessage = r; channel.port2.postMessage(0); });
  return (async () => {
    // The smallest non-zero step of performance.now().
    let step = Infinity;
    for (let i = 0; i < 200; i++) {
      const a = performance.now();
      let b = a;
      while (b === a) b = performance.now();
      step = Math.min(step, b - a);
    }
    let n = 0;
    for (let i = 0; i < warmUp; i++) footfall.track("bench", { i: n++, plan: "pro" });
    await yieldNow();

    const single = new Float64Array(singleCalls);
    for (let i = 0; i < singleCalls; i++) {
      const t0 = performance.now();
      footfall.track("bench", { i: n++, plan: "pro" });
      single[i] = performance.now() - t0;
      if (i % batchSize === batchSize - 1) await yieldNow();
    }
    const perCall = new Float64Array(batches);
    for (let b = 0; b < batches; b++) {
      const t0 = performance.now();
      for (let j = 0; j < batchSize; j++) footfall.track("bench", { i: n++, plan: "pro" });
      perCall[b] = (performance.now() - t0) / batchSize;
      await yieldNow();
    }
    await footfall.flush();
    return { step, crossOriginIsolated: self.crossOriginIsolated, single: [...single], perCall: [...perCall], calls: n };
  })();
}

const collector = await startCollector(["--rate-limit", "0"]);
const browser = await launchChromium();
const rows = [];
let problems = [];
try {
  const version = browser.version();
  console.log(`track-cost: Chromium ${version}, script-tag SDK from ${collector.url}, default options`);
  console.log(`calls: ${WARM_UP} warm-up, ${SINGLE_CALLS.toLocaleString("en")} timed one by one, ` +
    `${BATCHES} batches × ${BATCH_SIZE} timed per batch; props {i, plan: "pro"}\n`);
  for (const isolated of [false, true]) {
    const { context, page, problems: p } = await openPage(browser, collector.url, isolated);
    const r = await page.evaluate(measureInPage, {
      singleCalls: SINGLE_CALLS, batches: BATCHES, batchSize: BATCH_SIZE, warmUp: WARM_UP,
    });
    problems = problems.concat(p);
    await context.close();
    const row = {
      page: isolated ? "cross-origin isolated" : "plain (not isolated)",
      isolated: r.crossOriginIsolated,
      step: r.step,
      singleMedian: percentile(r.single, 50),
      singleP99: percentile(r.single, 99),
      singleMean: mean(r.single),
      batchMedian: percentile(r.perCall, 50),
      batchP99: percentile(r.perCall, 99),
      batchMean: mean(r.perCall),
    };
    rows.push(row);
    console.log(`${row.page} page (crossOriginIsolated=${row.isolated}), performance.now() step ${us(row.step)}`);
    console.log(`  single calls (n=${SINGLE_CALLS}):   median ${us(row.singleMedian)}, p99 ${us(row.singleP99)}, mean ${us(row.singleMean)}`);
    console.log(`  per call in batches of ${BATCH_SIZE} (n=${BATCHES}): median ${us(row.batchMedian)}, p99 ${us(row.batchP99)}, mean ${us(row.batchMean)}`);
  }

  const [plain, iso] = rows;
  const trust = (r) => {
    const ratio = r.singleMedian / r.step;
    if (ratio >= 20) return `usable: calls last ${ratio.toFixed(0)}× the ${us(r.step)} step`;
    if (ratio >= 4) return `rough: calls last ${ratio.toFixed(0)}× the ${us(r.step)} step, so one step is ±${(100 / ratio).toFixed(0)} % of a call`;
    return `not usable: calls last under 4× the ${us(r.step)} step, so most read as 0 or one step`;
  };
  console.log(`
Which to trust:
- per call in batches (median ${us(plain.batchMedian)} plain, ${us(iso.batchMedian)} isolated): always; a batch lasts
  ~${(plain.batchMedian * BATCH_SIZE * 1000).toFixed(0)} µs, far above either clock step. It is a mean of 100 calls, so its p99 hides single slow calls.
- single calls, plain page: ${trust(plain)}.
- single calls, isolated page: ${trust(iso)}; its p99 (${us(iso.singleP99)}) is the view of slow single calls.`);
  if (problems.length) console.log(`\npage warnings/errors: ${problems.slice(0, 5).join(" | ")}`);

  const date = new Date().toISOString().slice(0, 10);
  console.log(`\nBENCHMARKS.md row (| date | browser | per call, batches of ${BATCH_SIZE}: median | p99 | single calls, isolated page: median | p99 |):`);
  console.log(`| ${date} | Chromium ${version} | ${us(plain.batchMedian)} | ${us(plain.batchP99)} | ${us(iso.singleMedian)} | ${us(iso.singleP99)} |`);
} finally {
  await browser.close();
  await collector.stop();
}

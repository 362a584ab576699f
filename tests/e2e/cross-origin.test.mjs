// The site and the collector on different origins (product.md §1): the collector serves
// /sdk/ to any origin, so the SDK loads on any page, including a page that isolates itself
// with Cross-Origin-Embedder-Policy: require-corp; and the collector's answers to a batch,
// refusals included, are readable by the page's SDK (status and Retry-After), so it can tell
// "slow down" and "bad batch" from a network failure or an ad blocker.
//
// Run: FOOTFALL_COLLECTOR_BIN=target/debug/footfall-collector node --test tests/e2e/cross-origin.test.mjs
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import {
  startCollector, startSite, launchChromium, sdkReady, eventually, testPageHtml, storedEvents,
} from "./harness.mjs";

let collector, site, browser;
before(async () => {
  // A tiny rate limit (bursts of 20 batches) to get a real 429 from the collector.
  collector = await startCollector(["--rate-limit", "1"]);
  site = await startSite(collector.url);
  browser = await launchChromium();
});
after(async () => {
  await browser?.close();
  await collector?.stop();
  await site?.close();
});

/** Clicks the page's Buy button and answers the visitor's stored events once it is there. */
async function buyStored(page) {
  const anonymousId = await page.evaluate(() => footfall.getAnonymousId());
  await page.click("#buy");
  await page.evaluate(() => footfall.flush());
  return eventually(async () => {
    const ev = await storedEvents(collector, anonymousId);
    return ev.some((e) => e.name === "buy") && ev;
  });
}

test("a page with COEP require-corp (cross-origin isolated) loads the SDK and tracks", async () => {
  const url = site.page("/isolated.html", testPageHtml(collector.url), {
    "cross-origin-embedder-policy": "require-corp",
    "cross-origin-opener-policy": "same-origin",
  });
  const context = await browser.newContext();
  const page = await context.newPage();
  const problems = [];
  page.on("pageerror", (e) => problems.push(`pageerror: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error" || m.type() === "warning") problems.push(`${m.type()}: ${m.text()}`);
  });
  const sdkFiles = [];
  page.on("response", (r) => {
    if (r.url().startsWith(`${collector.url}/sdk/`)) sdkFiles.push([new URL(r.url()).pathname, r.status()]);
  });
  await page.goto(url);
  assert.equal(await page.evaluate(() => self.crossOriginIsolated), true,
    "the headers took effect: the page is cross-origin isolated, so COEP applies to every load");
  await sdkReady(page);
  assert.deepEqual(sdkFiles, [["/sdk/footfall.js", 200]],
    "the script, with its wasm inside, came from the collector (one request)");

  const events = await buyStored(page);
  assert.deepEqual(events.map((e) => e.name), ["$pageview", "buy"]);
  assert.equal(events[0].url, url, "stored with the isolated page's URL");
  assert.deepEqual(problems, [], "nothing was blocked or failed in the page");
  await context.close();
});

test("a copy of footfall.js that the site serves itself as UTF-8 still loads: the wasm beside it is fetched", async () => {
  // A site owner who copies the SDK to their own server, which labels every script UTF-8: the
  // wasm's bytes inside the file then read as other characters, do not compile, and the script
  // falls back to footfall_bg.wasm next to it.
  const js = Buffer.from(await (await fetch(`${collector.url}/sdk/footfall.js`)).arrayBuffer());
  const wasm = Buffer.from(await (await fetch(`${collector.url}/sdk/footfall_bg.wasm`)).arrayBuffer());
  site.page("/static/footfall.js", js, { "content-type": "text/javascript; charset=utf-8" });
  site.page("/static/footfall_bg.wasm", wasm, { "content-type": "application/wasm" });
  const html = testPageHtml(collector.url).replace(`${collector.url}/sdk/footfall.js`, `${site.url}/static/footfall.js`);
  assert.ok(html.includes(`${site.url}/static/footfall.js`));
  const url = site.page("/self-hosted.html", html);
  const context = await browser.newContext();
  const page = await context.newPage();
  const problems = [];
  page.on("pageerror", (e) => problems.push(`pageerror: ${e.message}`));
  const fetched = [];
  page.on("response", (r) => {
    if (r.url().startsWith(`${site.url}/static/`)) fetched.push(new URL(r.url()).pathname);
  });
  await page.goto(url);
  await sdkReady(page);
  assert.deepEqual(fetched, ["/static/footfall.js", "/static/footfall_bg.wasm"]);
  const events = await buyStored(page);
  assert.deepEqual(events.map((e) => e.name), ["$pageview", "buy"]);
  assert.deepEqual(problems, []);
  await context.close();
});

test("the collector's refusals reach a page of another origin: a 400 and a 429 with Retry-After", async () => {
  const url = site.page("/plain.html", "<!doctype html><title>plain</title><p>A page of the site.</p>");
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(url);
  // What the SDK does (browser.rs `post`): a text/plain POST, no preflight, then the status
  // and Retry-After read from the answer. A refusal without CORS headers would be a TypeError.
  const answers = await page.evaluate(async (endpoint) => {
    const post = async (body) => {
      try {
        const r = await fetch(`${endpoint}/v1/batch`, { method: "POST", body });
        return { status: r.status, retryAfter: r.headers.get("retry-after"), body: await r.json() };
      } catch (e) {
        return { failed: String(e) };
      }
    };
    const bad = await post("this is not JSON");
    const ok = [];
    let limited = null;
    for (let i = 0; i < 40 && !limited; i++) {
      const a = await post(JSON.stringify({ key: "demo", sent_at: new Date().toISOString(), events: [] }));
      if (a.status === 200) ok.push(a);
      else limited = a;
    }
    return { bad, ok: ok.length, limited };
  }, collector.url);

  assert.equal(answers.bad.status, 400, `a bad batch is a readable 400: ${JSON.stringify(answers.bad)}`);
  assert.equal(answers.bad.body.error.code, "invalid-json");
  assert.ok(answers.ok >= 1, "batches within the limit are accepted");
  assert.equal(answers.limited?.status, 429, `the limit is a readable 429: ${JSON.stringify(answers.limited)}`);
  assert.ok(Number(answers.limited.retryAfter) > 0, `with a readable Retry-After: ${JSON.stringify(answers.limited)}`);
  assert.equal(answers.limited.body.error.code, "rate-limited");
  await context.close();
});

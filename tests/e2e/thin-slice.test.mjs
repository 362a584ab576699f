// The foundation's thin slice, all real: the demo page's script tag loads the built SDK in
// Chromium, the SDK sends batches to the collector, the collector stores them in SQLite, and
// the query API answers with what the page did. Twice: the shop on a site of its own (another
// origin, the README's snippet: the script tag's src and data-endpoint are the collector's),
// and the shop the collector itself serves at /demo/ (same origin: the e2e suites' one
// same-origin page, what `cargo xtask demo` shows).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startCollector, startSite, launchChromium, sdkReady, eventually, screenshot } from "./harness.mjs";

let collector, site, browser;
before(async () => {
  collector = await startCollector();
  site = await startSite(collector.url);
  browser = await launchChromium();
});
after(async () => {
  await browser?.close();
  await collector?.stop();
  await site?.close();
});

test("script tag → SDK → batch → SQLite → query API, the page on a site of its own", async () => {
  await thinSlice(`${site.url}/demo/index.html?utm_campaign=e2e`, "thin-slice-demo");
});

test("the same-origin demo: the shop the collector serves at /demo/", async () => {
  await thinSlice(`${collector.url}/demo/index.html?utm_campaign=e2e`, "thin-slice-demo-same-origin");
});

/** The demo shop at `url`: two clicks, then every event read back through the API. */
async function thinSlice(url, shot) {
  const context = await browser.newContext();
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e));
  await page.goto(url);
  await sdkReady(page);

  const anonymousId = await page.evaluate(() => footfall.getAnonymousId());
  const sessionId = await page.evaluate(() => footfall.getSessionId());
  const cookie = (await context.cookies()).find((c) => c.name === "ff_id");
  assert.ok(cookie, "the ff_id cookie is set");
  assert.equal(cookie.value, anonymousId);
  assert.equal(cookie.sameSite, "Lax");
  assert.ok(cookie.expires * 1000 > Date.now() + 364 * 86400e3, "kept for a year");

  await page.click("#add-to-cart");
  await page.click("#add-socks");
  await page.evaluate(() => footfall.flush());
  await screenshot(page, shot);

  const user = await eventually(async () => {
    const r = await collector.api(`/api/v1/users/${anonymousId}`);
    const events = r.body.sessions?.flatMap((s) => s.events) ?? [];
    return events.length >= 4 && r.body;
  });
  assert.deepEqual(user.user.anonymous_ids, [anonymousId]);
  assert.equal(user.sessions.length, 1, "one session");
  assert.equal(user.sessions[0].session_id, sessionId);
  const events = user.sessions[0].events;
  assert.deepEqual(
    events.map((e) => e.name),
    ["$pageview", "shop_opened", "add_to_cart", "add_to_cart"],
    "the page view, the call made before the wasm loaded, then the clicks, in order",
  );
  assert.deepEqual(events.map((e) => e.seq), [1, 2, 3, 4], "increasing sequence numbers");
  assert.deepEqual(events[1].props, { campaign: "e2e" });
  assert.deepEqual(events[3].props, { product: "socks", price: 12 });
  assert.equal(events[0].url, url, "the page's own URL");

  // Counted for this visitor alone: each of the two tests adds one visitor.
  const filter = `filter=${encodeURIComponent(`url:eq:${url}`)}`;
  const insights = await collector.api(`/api/v1/insights?metric=events&last=1d&${filter}`);
  assert.equal(insights.status, 200);
  assert.equal(insights.body.total, 4);
  const sessions = await collector.api(`/api/v1/insights?metric=sessions&last=1d&${filter}`);
  assert.equal(sessions.body.total, 1);
  assert.deepEqual(errors, [], "no error reached the page");
  await context.close();
}

test("the query API wants the admin token", async () => {
  for (const token of [null, "wrong"]) {
    const r = await collector.api("/api/v1/insights?metric=events&last=1d", { token });
    assert.equal(r.status, 401);
    assert.equal(r.body.error.code, "unauthorized");
    assert.equal(typeof r.body.error.message, "string");
  }
});

test("a page from another origin is refused for the demo key", async () => {
  const body = JSON.stringify({ key: "demo", sent_at: new Date().toISOString(), events: [] });
  const res = await fetch(`${collector.url}/v1/batch`, {
    method: "POST",
    headers: { "content-type": "text/plain", origin: "https://evil.example" },
    body,
  });
  assert.equal(res.status, 403);
  assert.equal((await res.json()).error.code, "origin-not-allowed");
});

// The host's net room (js-wrapper/src/host/net.js) alone in Chromium, on a site's page, against
// the real collector binary on another origin (`FOOTFALL_COLLECTOR_BIN`): `post` is a text/plain
// POST with no CORS preflight whose status and Retry-After reach `_on(1000 + status, retryAfter)`
// (status 0 when the request fails); `beacon` answers whether the browser took the body.
// Run: FOOTFALL_COLLECTOR_BIN=target/debug/footfall-collector node --test tests/e2e/host-net.test.mjs
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:net";
import { launchChromium, startCollector, startSite, eventually } from "./harness.mjs";
import { roomHtml } from "./rooms.mjs";

let collector, site, browser;
before(async () => {
  // One batch a minute from a client: the second is refused with 429 and Retry-After.
  collector = await startCollector(["--rate-limit", "1"]);
  site = await startSite(collector.url);
  browser = await launchChromium();
});
after(async () => {
  await browser?.close();
  await collector?.stop();
  await site?.close();
});

function batch() {
  return JSON.stringify({ key: "demo", sent_at: new Date().toISOString(), events: [] });
}

/** A port on 127.0.0.1 where nothing listens. */
async function closedPort() {
  const server = createServer();
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address();
  await new Promise((r) => server.close(r));
  return port;
}

async function netPage() {
  const context = await browser.newContext();
  const requests = [];
  context.on("request", (r) => requests.push(r));
  const page = await context.newPage();
  await page.goto(site.page("/net.html", roomHtml(["net"])));
  await page.evaluate(() => (window.net = footfallNet(call)));
  return { context, page, requests };
}

test("post: a text/plain POST without preflight; 200 then 429 with its Retry-After reach _on(1000 + status)", async () => {
  const { context, page, requests } = await netPage();
  const url = `${collector.url}/v1/batch`;
  // One at a time, until the collector's limit refuses one (after a burst of 20).
  let calls = [];
  for (let i = 1; i <= 30 && !calls.some((c) => c[1] !== 1200); i++) {
    await page.evaluate(([u, b]) => net.post(u, b), [url, batch()]);
    calls = await eventually(() => page.evaluate((n) => (calls.length === n ? calls : null), i));
  }
  const refused = calls.pop();
  assert.ok(calls.length >= 1);
  for (const c of calls) assert.deepEqual(c, ["_on", 1200, 0], "accepted, no Retry-After");
  assert.equal(refused[0], "_on");
  assert.equal(refused[1], 1429);
  assert.ok(Number.isInteger(refused[2]) && refused[2] > 0, `Retry-After in seconds: ${refused[2]}`);
  const toCollector = requests.filter((r) => r.url() === url);
  assert.equal(toCollector.length, calls.length + 1);
  assert.ok(toCollector.every((r) => r.method() === "POST"), "no OPTIONS preflight");
  assert.match(toCollector[0].headers()["content-type"], /^text\/plain/);
  assert.equal(await page.evaluate(() => typeof net.post("", "")), "undefined", "post answers nothing itself");
  await context.close();
});

test("post: a request that fails answers status 0", async () => {
  const { context, page } = await netPage();
  const port = await closedPort();
  await page.evaluate((u) => net.post(u, "{}"), `http://127.0.0.1:${port}/v1/batch`);
  const calls = await eventually(() => page.evaluate(() => (calls.length ? calls : null)));
  assert.deepEqual(calls, [["_on", 1000, 0]]);
  await context.close();
});

test("beacon: true when the browser takes the body, false when it refuses it, never a throw", async () => {
  const { context, page, requests } = await netPage();
  const url = `${collector.url}/v1/batch`;
  const got = await page.evaluate(
    ([u, b]) => [net.beacon(u, b), net.beacon(u, "x".repeat(70 * 1024)), net.beacon("http://[", b)],
    [url, batch()],
  );
  assert.deepEqual(got, [true, false, false]);
  await eventually(() => requests.some((r) => r.url() === url && r.method() === "POST"));
  assert.deepEqual(await page.evaluate(() => calls), [], "a beacon has no answer");
  await context.close();
});

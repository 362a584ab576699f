// Page views of single-page apps and page leaves (product.md §1: `autoPageviews`,
// `trackEngagement`) in real Chromium: History API navigations (pushState, replaceState,
// popstate), back/forward-cache restores, and the `$pageleave` event with `props.engaged_ms`.
// Engaged time is checked against Playwright's fake clock (paused, advanced by the test, with
// real input events in between).
//
// Playwright starts Chromium with --disable-back-forward-cache; this file launches it without
// that switch, so a restore from the back/forward cache can happen. Whether one did is read
// from `pageshow.persisted`, and compared with a page without the SDK (a control): when only
// the SDK's page is not restored, the test fails with Chromium's reasons; when even the control
// is not, it fails too, saying this browser cannot run it.
//
// Run: FOOTFALL_COLLECTOR_BIN=target/debug/footfall-collector node --test tests/e2e/spa.test.mjs
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";
import { startCollector, startSite, sdkReady, eventually, serveTestPage, storedEvents, setHidden, pauseClock } from "./harness.mjs";

const SEC = 1000;
const MIN = 60 * SEC;

let collector, site, browser;
before(async () => {
  collector = await startCollector(["--rate-limit", "0"]);
  site = await startSite(collector.url); // the pages' own origin, not the collector's
  // As harness.launchChromium, but with the back/forward cache left on.
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    ignoreDefaultArgs: ["--disable-back-forward-cache"],
    args: [
      "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
      // A person's user agent, as harness.launchChromium sets it (HeadlessChrome is a bot).
      "--user-agent=Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/143.0.0.0 Safari/537.36",
    ],
  });
});
after(async () => {
  await browser?.close();
  await collector?.stop();
  await site?.close();
});

/** A fresh profile serving the test page at /t/* and a page without the SDK at /elsewhere/*. */
async function setup(t, { clock = false, attrs = {} } = {}) {
  const context = await browser.newContext();
  t.after(() => context.close().catch(() => {}));
  if (clock) await context.clock.install();
  const url = await serveTestPage(context, site, attrs);
  await context.route(`${site.url}/elsewhere/**`, (route) => route.fulfill({
    status: 200, contentType: "text/html; charset=utf-8",
    body: "<!doctype html><html><head><title>Elsewhere</title></head><body><p>No SDK here.</p>" +
      "<script>addEventListener('pageshow', (e) => (window.__shows ||= []).push(e.persisted));</script></body></html>",
  }));
  return { context, url, elsewhere: `${site.url}/elsewhere/page.html` };
}

async function open(context, url, beforeGoto) {
  const page = await context.newPage();
  page.errors = [];
  page.on("pageerror", (e) => page.errors.push(e.message));
  if (beforeGoto) await beforeGoto(page);
  await page.goto(url);
  await sdkReady(page);
  return page;
}

const anonId = (page) => page.evaluate(() => footfall.getAnonymousId());
const named = (events, name) => events.filter((e) => e.name === name);
const bySeq = (events) => [...events].sort((x, y) => x.seq - y.seq);
const pageviewPaths = (events) => named(bySeq(events), "$pageview").map((e) => e.path ?? new URL(e.url).pathname);

/**
 * Records a `barrier` event, flushes, and waits until the collector has it: everything the page
 * recorded before it has been sent by then (one tab sends in order). Answers all stored events.
 */
async function barrier(page, anon, mark) {
  await page.evaluate(async (m) => {
    footfall.track("barrier", { m });
    await footfall.flush();
  }, mark);
  return bySeq(await eventually(async () => {
    const events = await storedEvents(collector, anon);
    return events.some((e) => e.name === "barrier" && e.props?.m === mark) && events;
  }, 15000));
}

/** `total` ms of an active user: the clock moves by `step`, then a click, and so on. */
async function beActive(context, page, total, step) {
  for (let done = 0; done < total; done += step) {
    await context.clock.runFor(step);
    await page.mouse.click(5, 5);
  }
}

/** The one `$pageleave` among `events`, with checks on its `engaged_ms`. */
function theLeave(events, path) {
  const leaves = named(events, "$pageleave");
  assert.equal(leaves.length, 1, `one $pageleave: ${JSON.stringify(leaves.map((e) => [e.path, e.props]))}`);
  const [leave] = leaves;
  assert.equal(leave.path ?? new URL(leave.url).pathname, path, "it carries the page that was left");
  const engaged = leave.props?.engaged_ms;
  assert.ok(Number.isInteger(engaged) && engaged >= 0, `engaged_ms is a non-negative integer: ${JSON.stringify(leave.props)}`);
  return leave;
}

// ---- Page views ----

test("autoPageviews off: no automatic page views; manual page() calls still leave and view", { timeout: 30000 }, async (t) => {
  const { context, url } = await setup(t, { attrs: { "auto-pageviews": "false" } });
  const page = await open(context, url);
  const anon = await anonId(page);
  await page.evaluate(() => {
    history.pushState({}, "", "/t/pushed");
    history.replaceState({}, "", "/t/replaced");
  });
  let events = await barrier(page, anon, "no-auto");
  assert.deepEqual(pageviewPaths(events), [], "neither the load nor the History API records a page view");
  assert.deepEqual(named(events, "$pageleave"), []);

  await page.evaluate(() => {
    footfall.page({ step: 1 });
    history.pushState({}, "", "/t/second");
    footfall.page({ step: 2 });
  });
  events = await barrier(page, anon, "manual");
  assert.deepEqual(pageviewPaths(events), ["/t/replaced", "/t/second"]);
  theLeave(events, "/t/replaced");
  assert.deepEqual(page.errors, []);
});

test("trackEngagement off: page views without any $pageleave", { timeout: 30000 }, async (t) => {
  const { context, url } = await setup(t, { attrs: { "track-engagement": "false" } });
  const page = await open(context, url);
  const anon = await anonId(page);
  await page.evaluate(() => history.pushState({}, "", "/t/next"));
  const events = await barrier(page, anon, "no-leave");
  assert.deepEqual(pageviewPaths(events), ["/t/page.html", "/t/next"]);
  assert.deepEqual(named(events, "$pageleave"), []);
});

test("pushState to a new path records one page view with the new URL", { timeout: 30000 }, async (t) => {
  const { context, url } = await setup(t);
  const page = await open(context, url);
  const anon = await anonId(page);
  await page.evaluate(() => history.pushState({ step: 1 }, "", "/t/cart?step=1"));
  const events = await barrier(page, anon, "after-push");
  assert.deepEqual(pageviewPaths(events), ["/t/page.html", "/t/cart"]);
  const view = named(events, "$pageview")[1];
  assert.match(view.url, /\/t\/cart\?step=1$/, "the page view has the URL pushed");
  assert.ok(view.seq < named(events, "barrier")[0].seq, "recorded at the navigation, before later events");
  assert.deepEqual(page.errors, []);
});

test("replaceState: the same URL records nothing, a new path records one page view", { timeout: 30000 }, async (t) => {
  const { context, url } = await setup(t);
  const page = await open(context, url);
  const anon = await anonId(page);
  // What routers do to keep scroll positions: same URL, new state.
  await page.evaluate(() => history.replaceState({ scroll: 120 }, "", location.href));
  let events = await barrier(page, anon, "after-same");
  assert.deepEqual(pageviewPaths(events), ["/t/page.html"], "same path: no page view");

  await page.evaluate(() => history.replaceState({}, "", "/t/renamed"));
  events = await barrier(page, anon, "after-new");
  assert.deepEqual(pageviewPaths(events), ["/t/page.html", "/t/renamed"], "new path: one page view");
  assert.deepEqual(page.errors, []);
});

test("popstate (back, then forward) records one page view each", { timeout: 30000 }, async (t) => {
  const { context, url } = await setup(t);
  const page = await open(context, url);
  const anon = await anonId(page);
  await page.evaluate(() => history.pushState({}, "", "/t/two"));
  const traverse = (dir) => page.evaluate((d) => new Promise((resolve) => {
    addEventListener("popstate", () => resolve(location.pathname), { once: true });
    history[d]();
  }), dir);
  assert.equal(await traverse("back"), "/t/page.html");
  let events = await barrier(page, anon, "after-back");
  assert.deepEqual(pageviewPaths(events), ["/t/page.html", "/t/two", "/t/page.html"]);

  assert.equal(await traverse("forward"), "/t/two");
  events = await barrier(page, anon, "after-forward");
  assert.deepEqual(pageviewPaths(events), ["/t/page.html", "/t/two", "/t/page.html", "/t/two"]);
  assert.deepEqual(page.errors, []);
});

/** Goes to `away` and back; answers whether the page came back from the back/forward cache. */
async function awayAndBack(context, page, away) {
  const cdp = await context.newCDPSession(page);
  await cdp.send("Page.enable");
  let notUsed = null;
  cdp.on("Page.backForwardCacheNotUsed", (e) => (notUsed = e));
  await page.goto(away);
  // A restore fires no `load`: wait for the commit, then for `pageshow`.
  await page.goBack({ waitUntil: "commit" });
  const restored = await page.waitForFunction(() => (window.__shows ?? []).includes(true), null, { timeout: 5000 })
    .then(() => true, () => false);
  const reasons = notUsed
    ? (notUsed.notRestoredExplanations ?? []).map((r) => `${r.type}:${r.reason}`).join(", ")
    : "no backForwardCacheNotUsed event";
  await cdp.detach().catch(() => {});
  return { restored, reasons };
}

test("a back/forward-cache restore records one page view", { timeout: 40000 }, async (t) => {
  const { context, url, elsewhere } = await setup(t);
  // The control: a page without the SDK, to tell Chromium's choices from the SDK's doing.
  const control = await context.newPage();
  await control.goto(elsewhere);
  await control.evaluate(() => history.replaceState({}, "", "/elsewhere/control.html"));
  const controlResult = await awayAndBack(context, control, `${site.url}/elsewhere/other.html`);
  await control.close();

  const page = await open(context, url, (p) => p.addInitScript(() => {
    window.__shows = [];
    addEventListener("pageshow", (e) => window.__shows.push(e.persisted));
  }));
  const anon = await anonId(page);
  await page.evaluate(() => footfall.flush());
  const { restored, reasons } = await awayAndBack(context, page, elsewhere);
  assert.ok(restored || controlResult.restored,
    `Chromium restored neither this page nor a page without the SDK from the back/forward cache (${reasons}): this test cannot run here`);
  assert.ok(restored, `a page without the SDK is restored from the back/forward cache, the SDK's page is not: ${reasons}`);
  const events = await barrier(page, anon, "after-restore");
  assert.deepEqual(pageviewPaths(events), ["/t/page.html", "/t/page.html"],
    "the first load and the restore: two page views, nothing from the page without the SDK");
  assert.deepEqual(page.errors, []);
});

// ---- Page leaves and engaged time ----

test("SPA navigation: a $pageleave for the page left, engaged_ms ≈ the active time, then the page view",
  { timeout: 60000 }, async (t) => {
    const { context, url } = await setup(t, { clock: true });
    const start = Date.now(); // the fake clock runs with the real one until paused
    const page = await open(context, url);
    const anon = await anonId(page);
    await pauseClock(context, page);
    await beActive(context, page, 30 * SEC, 3 * SEC);
    const leftAt = await page.evaluate(() => Date.now());
    await page.evaluate(() => history.pushState({}, "", "/t/next"));
    const events = await barrier(page, anon, "after-leave");

    const leave = theLeave(events, "/t/page.html");
    const engaged = leave.props.engaged_ms;
    assert.ok(engaged >= 27 * SEC, `at least the 30 s of activity, give or take: ${engaged}`);
    assert.ok(engaged <= leftAt - start + SEC, `at most the time the page was open (${leftAt - start} ms): ${engaged}`);
    const view = named(events, "$pageview").find((e) => (e.path ?? new URL(e.url).pathname) === "/t/next");
    assert.ok(view, "the new page's view");
    assert.ok(leave.seq < view.seq, "the leave comes before the next page's view");
    assert.deepEqual(page.errors, []);
  });

test("closing the page sends a $pageleave with engaged_ms", { timeout: 60000 }, async (t) => {
  const { context, url } = await setup(t, { clock: true });
  const start = Date.now();
  const page = await open(context, url);
  const anon = await anonId(page);
  await pauseClock(context, page);
  await beActive(context, page, 20 * SEC, 2 * SEC);
  const closedAt = await page.evaluate(() => Date.now());
  await page.close();

  const events = await eventually(async () => {
    const ev = await storedEvents(collector, anon);
    return ev.some((e) => e.name === "$pageleave") && ev;
  }, 15000).catch(() => assert.fail("no $pageleave arrived after the page closed"));
  const leave = theLeave(events, "/t/page.html");
  const engaged = leave.props.engaged_ms;
  assert.ok(engaged >= 18 * SEC, `at least the 20 s of activity, give or take: ${engaged}`);
  assert.ok(engaged <= closedAt - start + SEC, `at most the time the page was open (${closedAt - start} ms): ${engaged}`);
});

test("time with the tab hidden is not engaged time", { timeout: 60000 }, async (t) => {
  const { context, url } = await setup(t, { clock: true });
  const start = Date.now();
  const page = await open(context, url);
  const anon = await anonId(page);
  await pauseClock(context, page);
  await beActive(context, page, 10 * SEC, 2 * SEC);
  await setHidden(page, true);
  await context.clock.runFor(60 * SEC);
  await setHidden(page, false);
  await beActive(context, page, 10 * SEC, 2 * SEC);
  const leftAt = await page.evaluate(() => Date.now());
  await page.evaluate(() => history.pushState({}, "", "/t/next"));
  const events = await barrier(page, anon, "after-leave");

  const engaged = theLeave(events, "/t/page.html").props.engaged_ms;
  assert.ok(engaged >= 18 * SEC, `the 20 s visible and active count: ${engaged}`);
  assert.ok(engaged <= leftAt - start - 60 * SEC + 2 * SEC,
    `the 60 s hidden do not (open ${leftAt - start} ms in all): ${engaged}`);
});

test("a visible page without input stops counting engaged time", { timeout: 60000 }, async (t) => {
  // product.md: "visible-and-active time". How long an idle user still counts is the SDK's
  // choice; 10 minutes without any input must not all count (this allows up to 5).
  const { context, url } = await setup(t, { clock: true });
  const page = await open(context, url);
  const anon = await anonId(page);
  await pauseClock(context, page);
  await beActive(context, page, 10 * SEC, 2 * SEC);
  for (let i = 0; i < 20; i++) await context.clock.runFor(30 * SEC); // 10 idle minutes
  await page.evaluate(() => history.pushState({}, "", "/t/next"));
  const events = await barrier(page, anon, "after-leave");

  const engaged = theLeave(events, "/t/page.html").props.engaged_ms;
  assert.ok(engaged >= 9 * SEC, `the 10 active seconds count: ${engaged}`);
  assert.ok(engaged <= 10 * SEC + 5 * MIN + 2 * SEC, `10 idle minutes do not all count: ${engaged}`);
});

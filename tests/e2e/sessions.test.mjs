// Session rules of product.md §1 ("Identity and session rules") in real Chromium: tabs sharing
// or not sharing a session, inactivity, the maximum duration, the "tab" scope and hidden tabs.
// Time is Playwright's fake clock: the SDK must decide expiry from Date.now() at the next
// activity, so fast-forwarding the clock is what a user away from the keyboard looks like.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import {
  startCollector, startSite, launchChromium, sdkReady, eventually, serveTestPage, storedEvents, setHidden, ids,
} from "./harness.mjs";

const MIN = 60_000;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

let collector, site, browser;
const contexts = [];
before(async () => {
  // Simulated days pass here in real seconds: the collector's per-minute rate limit would
  // (rightly) answer 429 and the SDK would (rightly) wait out the Retry-After.
  collector = await startCollector(["--rate-limit", "0"]);
  site = await startSite(collector.url); // the pages' own origin, not the collector's
  browser = await launchChromium();
});
after(async () => {
  for (const c of contexts) await c.close().catch(() => {});
  await browser?.close();
  await collector?.stop();
  await site?.close();
});

/** A fresh browser profile (own cookies and storage) with the fake clock installed. */
async function newContext() {
  const context = await browser.newContext();
  contexts.push(context);
  await context.clock.install();
  return context;
}

async function open(context, url) {
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e));
  page.errors = errors;
  await page.goto(url);
  await sdkReady(page);
  return page;
}

/** Records a custom event on `page` and answers the session ID the SDK then reports. */
function trackAndGetSession(page, name, props) {
  return page.evaluate(([n, p]) => {
    footfall.track(n, p);
    return footfall.getSessionId();
  }, [name, props]);
}

function flush(...pages) {
  return Promise.all(pages.map((p) => p.evaluate(() => footfall.flush())));
}

/** Waits until the collector has `count` events named `name` for `id`; answers all its events. */
function stored(id, predicate) {
  return eventually(async () => {
    const events = await storedEvents(collector, id);
    return predicate(events) && events;
  });
}

const demo = () => `${site.url}/demo/index.html`;
const product = () => `${site.url}/demo/product.html`;

test("two tabs of one browser share the anonymous ID and the session", { timeout: 30000 }, async () => {
  const context = await newContext();
  const a = await open(context, demo());
  const b = await open(context, product());
  const idsA = await ids(a);
  const idsB = await ids(b);
  assert.match(idsA.anonymousId, UUID);
  assert.match(idsA.sessionId, UUID);
  assert.equal(idsB.anonymousId, idsA.anonymousId, "same anonymous ID in both tabs");
  assert.equal(idsB.sessionId, idsA.sessionId, "same session in both tabs");

  await a.click("#add-to-cart");
  await b.click("#add-to-cart");
  await a.click("#add-socks");
  await flush(a, b);
  const events = await stored(idsA.anonymousId,
    (ev) => ev.filter((e) => e.name === "add_to_cart").length === 3);
  assert.deepEqual([...new Set(events.map((e) => e.session_id))], [idsA.sessionId],
    "every event of both tabs is in the one session");
  const seqs = events.map((e) => e.seq).sort((x, y) => x - y);
  assert.deepEqual(seqs, seqs.map((_, i) => i + 1),
    "the tabs share one sequence counter: 1..n without duplicates");
  assert.deepEqual([...a.errors, ...b.errors], []);
});

test("after 31 idle minutes the next activity starts a new session, also in a background tab",
  { timeout: 30000 }, async () => {
    const context = await newContext();
    const front = await open(context, demo());
    const back = await open(context, product()); // does nothing while the user is away
    const before = await ids(front);
    await front.click("#add-to-cart");
    assert.equal(await front.evaluate(() => footfall.getSessionId()), before.sessionId);

    await context.clock.fastForward(31 * MIN);
    // The first activity after the break happens in the tab that sat in the background.
    await back.click("#add-to-cart");
    const fresh = await back.evaluate(() => footfall.getSessionId());
    assert.match(fresh ?? "", UUID, "the background tab has a session after its click");
    assert.notEqual(fresh, before.sessionId, "31 idle minutes end the session");
    assert.equal(await back.evaluate(() => footfall.getAnonymousId()), before.anonymousId,
      "same visitor");

    // The other tab joins the new session instead of continuing the old one or making a third.
    assert.equal(await trackAndGetSession(front, "back_again"), fresh, "the front tab sees the new session");
    await flush(front, back);
    const events = await stored(before.anonymousId, (ev) => ev.some((e) => e.name === "back_again"));
    const sessionOf = (name, i = 0) => events.filter((e) => e.name === name)[i]?.session_id;
    assert.equal(sessionOf("add_to_cart", 0), before.sessionId, "the click before the break");
    assert.equal(sessionOf("add_to_cart", 1), fresh, "the background tab's click after the break");
    assert.equal(sessionOf("back_again"), fresh);
    const newSession = events.filter((e) => e.session_id === fresh).map((e) => e.seq).sort((x, y) => x - y);
    assert.deepEqual(newSession, [1, 2], "the new session numbers its events from 1");
  });

test("activity in one tab keeps the session alive for the other tab", { timeout: 30000 }, async () => {
  const context = await newContext();
  const a = await open(context, demo());
  const b = await open(context, product());
  const { sessionId } = await ids(a);
  await context.clock.fastForward(20 * MIN);
  assert.equal(await trackAndGetSession(a, "still_here"), sessionId);
  await context.clock.fastForward(20 * MIN);
  // 40 minutes after b's own last activity, but only 20 after the visit's last one.
  assert.equal(await trackAndGetSession(b, "other_tab"), sessionId,
    "two tabs open at once never split one visit");
});

test("user input alone (no event) counts as activity", { timeout: 30000 }, async () => {
  const context = await newContext();
  const url = await serveTestPage(context, site);
  const page = await open(context, url);
  const { sessionId } = await ids(page);
  // Clicks on a button that records nothing, every 20 minutes for an hour.
  for (let i = 0; i < 3; i++) {
    await context.clock.fastForward(20 * MIN);
    await page.click("#noop");
  }
  await context.clock.fastForward(20 * MIN);
  assert.equal(await trackAndGetSession(page, "after_reading"), sessionId,
    "60 minutes after the last event, but never 30 without input: same session");
});

test("activity every 10 minutes for 24 hours: a new session starts after 24 h (defaults)",
  { timeout: 60000 }, async () => {
    const context = await newContext();
    const page = await open(context, demo());
    const first = await ids(page);
    const seen = [first.sessionId];
    // Step k is 10·k minutes (plus the few real seconds the test takes) after the session began.
    for (let k = 1; k <= 146; k++) {
      await context.clock.fastForward(10 * MIN);
      seen[k] = await trackAndGetSession(page, "tick", { k });
    }
    for (let k = 1; k <= 143; k++) {
      assert.equal(seen[k], first.sessionId, `step ${k} (${k * 10} min) is still the first session`);
    }
    const second = seen[145];
    assert.match(second ?? "", UUID);
    assert.notEqual(second, first.sessionId, "24 h 10 min after its start the session was replaced");
    assert.ok([first.sessionId, second].includes(seen[144]), "at 24 h: one of the two");
    assert.equal(seen[146], second, "and the new session continues");

    await flush(page);
    const events = await stored(first.anonymousId,
      (ev) => ev.filter((e) => e.name === "tick").length === 146);
    const sessions = [...new Set(events.map((e) => e.session_id))];
    assert.deepEqual(sessions.sort(), [first.sessionId, second].sort(), "exactly two sessions stored");
    const tick145 = events.find((e) => e.name === "tick" && e.props.k === 145);
    assert.equal(tick145.session_id, second);
  });

test("sessionTimeout and maxSessionDuration options are honoured", { timeout: 30000 }, async () => {
  const context = await newContext();
  const url = await serveTestPage(context, site, {
    "session-timeout": "600000", // 10 min
    "max-session-duration": "3600000", // 1 h
  });
  const page = await open(context, url);
  const first = await ids(page);
  const seen = [first.sessionId];
  for (let k = 1; k <= 14; k++) {
    await context.clock.fastForward(5 * MIN);
    seen[k] = await trackAndGetSession(page, "tick", { k });
  }
  for (let k = 1; k <= 11; k++) assert.equal(seen[k], first.sessionId, `step ${k} (${k * 5} min)`);
  const second = seen[13];
  assert.notEqual(second, first.sessionId, "65 min after its start, a 1 h session was replaced");
  assert.equal(seen[14], second);

  // 11 idle minutes: more than the 10-minute timeout given, less than the default 30.
  await context.clock.fastForward(11 * MIN);
  const third = await trackAndGetSession(page, "after_break");
  assert.match(third ?? "", UUID);
  assert.notEqual(third, second, "11 idle minutes end a session whose timeout is 10 minutes");
  await context.clock.fastForward(9 * MIN);
  assert.equal(await trackAndGetSession(page, "short_break"), third, "9 idle minutes do not");
});

test('sessionScope "tab": one session per tab, kept on reload, new in a duplicated tab',
  { timeout: 40000 }, async () => {
    const context = await newContext();
    const url = await serveTestPage(context, site, { "session-scope": "tab" });
    const one = await open(context, url);
    const two = await open(context, url);
    const idsOne = await ids(one);
    const idsTwo = await ids(two);
    assert.match(idsOne.sessionId, UUID);
    assert.match(idsTwo.sessionId, UUID);
    assert.notEqual(idsTwo.sessionId, idsOne.sessionId, "each tab has its own session");
    assert.equal(idsTwo.anonymousId, idsOne.anonymousId, "but the same visitor");
    await one.click("#buy");
    await two.click("#buy");
    assert.equal(await one.evaluate(() => footfall.getSessionId()), idsOne.sessionId,
      "the other tab's activity does not move this tab's session");

    // A reload is neither closing nor leaving the tab.
    await one.reload();
    await sdkReady(one);
    assert.equal(await one.evaluate(() => footfall.getSessionId()), idsOne.sessionId,
      "a reload keeps the tab's session");
    assert.equal(await trackAndGetSession(one, "after_reload"), idsOne.sessionId);

    // Duplicating a tab copies its sessionStorage into a new tab.
    const copied = await one.evaluate(() => Object.entries(sessionStorage));
    assert.ok(copied.length > 0,
      "the tab keeps its state in sessionStorage (what survives a reload and is copied on duplicate)");
    const dup = await context.newPage();
    await dup.addInitScript((entries) => {
      if (sessionStorage.length === 0) for (const [k, v] of entries) sessionStorage.setItem(k, v);
    }, copied);
    await dup.goto(url);
    await sdkReady(dup);
    const idsDup = await ids(dup);
    assert.match(idsDup.sessionId, UUID);
    assert.notEqual(idsDup.sessionId, idsOne.sessionId, "a duplicated tab gets its own session");
    assert.notEqual(idsDup.sessionId, idsTwo.sessionId);
    assert.equal(idsDup.anonymousId, idsOne.anonymousId);
    assert.equal(await trackAndGetSession(one, "original_again"), idsOne.sessionId,
      "the original tab keeps its session after being duplicated");

    await flush(one, two, dup);
    const events = await stored(idsOne.anonymousId,
      (ev) => ev.some((e) => e.name === "original_again") &&
        ev.filter((e) => e.name === "$pageview").length >= 4);
    const sessionsOf = (name) => events.filter((e) => e.name === name).map((e) => e.session_id);
    assert.deepEqual(sessionsOf("after_reload"), [idsOne.sessionId]);
    assert.deepEqual(sessionsOf("buy").sort(), [idsOne.sessionId, idsTwo.sessionId].sort());
    assert.deepEqual([...new Set(sessionsOf("$pageview"))].sort(),
      [idsOne.sessionId, idsTwo.sessionId, idsDup.sessionId].sort(),
      "page views: tab one twice (load, reload), tab two, the duplicate");
  });

test("endSessionOnHidden: hidden longer than hiddenGrace ends the session, shorter keeps it",
  { timeout: 30000 }, async () => {
    const context = await newContext();
    const url = await serveTestPage(context, site, {
      "end-session-on-hidden": "true",
      "hidden-grace": "5000",
    });
    const page = await open(context, url);
    const first = await trackAndGetSession(page, "before_hiding");
    assert.match(first ?? "", UUID);

    await setHidden(page, true);
    await context.clock.fastForward(6000);
    await setHidden(page, false);
    await page.click("#buy");
    const second = await page.evaluate(() => footfall.getSessionId());
    assert.match(second ?? "", UUID);
    assert.notEqual(second, first, "hidden 6 s with a 5 s grace: the next activity starts a new session");

    await setHidden(page, true);
    await context.clock.fastForward(2000);
    await setHidden(page, false);
    await page.click("#buy");
    assert.equal(await page.evaluate(() => footfall.getSessionId()), second,
      "hidden 2 s with a 5 s grace: same session");

    await page.evaluate(() => footfall.flush());
    const anonymousId = await page.evaluate(() => footfall.getAnonymousId());
    const events = await stored(anonymousId, (ev) => ev.filter((e) => e.name === "buy").length === 2);
    assert.equal(events.find((e) => e.name === "before_hiding").session_id, first);
    assert.deepEqual(events.filter((e) => e.name === "buy").map((e) => e.session_id), [second, second]);
    assert.deepEqual(page.errors, []);
  });

test('endSessionOnHidden defaults: off in "browser" scope, on (grace 0) in "tab" scope',
  { timeout: 30000 }, async () => {
    const context = await newContext();
    const browserScope = await open(context, demo());
    const s1 = await trackAndGetSession(browserScope, "before_hiding");
    await setHidden(browserScope, true);
    await context.clock.fastForward(60_000);
    await setHidden(browserScope, false);
    assert.equal(await trackAndGetSession(browserScope, "after_hiding"), s1,
      '"browser" scope: a tab hidden for a minute keeps its session');

    const tabContext = await newContext();
    const url = await serveTestPage(tabContext, site, { "session-scope": "tab" });
    const tab = await open(tabContext, url);
    const t1 = await trackAndGetSession(tab, "before_hiding");
    await setHidden(tab, true);
    await tabContext.clock.fastForward(1000);
    await setHidden(tab, false);
    const t2 = await trackAndGetSession(tab, "after_hiding");
    assert.match(t2 ?? "", UUID);
    assert.notEqual(t2, t1, '"tab" scope: hiding the tab ends its session');
  });

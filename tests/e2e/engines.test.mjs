// The SDK in every engine (issue #20): the end-to-end behaviour that matters most, in Chromium,
// Firefox ESR and WebKit (WebKitGTK's MiniBrowser, Safari's engine), from a page on another
// origin than the collector. One set of scenarios; only the driver differs (tests/e2e/engines/).
// The deep suites (sessions, identity, delivery, spa) stay Chromium-only, with Playwright's fake
// clock; these cover the rules whose outcome depends on the engine: cookies and storage, timers,
// page lifecycle (hide, close, back/forward cache, reload), sendBeacon, fetch answers read
// cross-origin.
//
// Every request of the SDK goes through a gateway in front of the collector (engines/gateway.mjs):
// it sees beacons of closing pages, whatever the driver, and answers 5xx/429 when a scenario asks.
// The pages are served by harness.startSite on `http://localhost:PORT`; the gateway and the
// collector are on `http://127.0.0.1:OTHER`: every SDK request is cross-origin.
//
// No driver here has a fake clock (WebDriver has none), so time-dependent rules use short
// options (`data-session-timeout` of a few seconds) and real waits with wide margins.
//
// Run: FOOTFALL_ENGINES=firefox FOOTFALL_COLLECTOR_BIN=target/dist/footfall-collector \
//        node --test --test-concurrency=1 tests/e2e/engines.test.mjs
// FOOTFALL_ENGINES is a comma-separated list of chromium, firefox, webkit (default: all three).
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startCollector, startSite, testPageHtml, storedEvents, eventually } from "./harness.mjs";
import { startGateway } from "./engines/gateway.mjs";
import { ENGINES, launchEngine } from "./engines/index.mjs";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const DAY = 86_400_000;
/** Only flush(), page hide and retries send: nothing leaves on a timer or a full batch. */
const QUIET = { "flush-interval": "600000", "batch-size": "500" };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const wanted = (process.env.FOOTFALL_ENGINES || ENGINES.join(",")).split(",").map((s) => s.trim()).filter(Boolean);
for (const name of wanted) {
  if (!ENGINES.includes(name)) throw new Error(`FOOTFALL_ENGINES: unknown engine ${name}`);
}

let collector, gateway, site;
before(async () => {
  collector = await startCollector(["--rate-limit", "0"]);
  gateway = await startGateway(collector.url);
  site = await startSite(gateway.url); // the script tag's src and data-endpoint: the gateway
});
after(async () => {
  await site?.close();
  await gateway?.close();
  await collector?.stop();
});

// ---- Pages ----

/**
 * Records errors that reach the page (the SDK must never throw into it), and whether each
 * `pageshow` was a restore from the back/forward cache.
 */
const WATCH = `<script>
window.__errors = [];
addEventListener("error", (e) => __errors.push("error: " + e.message));
addEventListener("unhandledrejection", (e) => __errors.push("unhandledrejection: " + e.reason));
window.__shows = [];
addEventListener("pageshow", (e) => __shows.push(e.persisted));
</script>`;

let pages = 0;
/** A new test page (harness.testPageHtml: the loader snippet and the script tag) at its own path. */
function newPage(attrs = {}, extraBody = "") {
  const dir = `/e/${++pages}`;
  return { dir, url: site.page(`${dir}/page.html`, testPageHtml(gateway.url, attrs, WATCH + extraBody)) };
}

/** Evaluates until `fn` answers something truthy (evaluations that fail mid-navigation are retried). */
async function waitFor(tab, fn, arg, ms = 15000, what = "condition") {
  const until = Date.now() + ms;
  let last;
  while (Date.now() < until) {
    try {
      last = await tab.evaluate(fn, arg);
      if (last) return last;
    } catch (e) {
      last = String(e?.message ?? e).split("\n")[0];
    }
    await sleep(100);
  }
  throw new Error(`${what}: not within ${ms} ms; last: ${JSON.stringify(last)}`);
}

/** Waits until the SDK has loaded, replaced the loader's queue and started. */
const ready = (tab) => waitFor(tab, () => typeof window.footfall?.getAnonymousId === "function" &&
  !window.footfall.q && !!window.footfall.getAnonymousId(), undefined, 15000, "the SDK is ready");

/** Waits until the SDK has loaded (started or not, opted out or not). */
const loaded = (tab) => waitFor(tab, () => typeof window.footfall?.isOptedOut === "function" &&
  !window.footfall.q, undefined, 15000, "the SDK has loaded");

async function open(profile, url) {
  const tab = await profile.open(url);
  await ready(tab);
  return tab;
}

const ids = (tab) => tab.evaluate(() => ({
  anonymousId: footfall.getAnonymousId(),
  sessionId: footfall.getSessionId(),
  userId: footfall.getUserId() ?? null,
}));

/** The session cookie `ff_s` (its state and the next event's number) as `tab` reads it. */
const sessionCookie = (tab) => tab.evaluate(() =>
  document.cookie.split("; ").find((c) => c.startsWith("ff_s=")) ?? "");

/**
 * Waits until `to` reads the session cookie `from` last wrote: in WebKit a cookie written in
 * one tab reaches another tab's `document.cookie` a moment later (see the README's "WebKit: a
 * cookie written in one tab reaches the others a moment later"), as it does before a person
 * acts in the other tab.
 */
async function caughtUp(from, to) {
  const written = await sessionCookie(from);
  assert.match(written, /^ff_s=./, "the session is kept in the cookie ff_s");
  for (let waited = 0; (await sessionCookie(to)) !== written; waited += 50) {
    assert.ok(waited < 10000, `the other tab still reads ${await sessionCookie(to)}, not ${written}`);
    await sleep(50);
  }
}

const track = (tab, name, props) => tab.evaluate(([n, p]) => {
  footfall.track(n, p ?? undefined);
  return footfall.getSessionId();
}, [name, props ?? null]);

const flush = (...tabs) => Promise.all(tabs.map((t) => t.evaluate(() => footfall.flush().then(() => true))));

/** What harness.setHidden does: the tab looks hidden (the user switched tabs), or shown again. */
const setHidden = (tab, hidden) => tab.evaluate((h) => {
  Object.defineProperty(document, "visibilityState", { configurable: true, get: () => (h ? "hidden" : "visible") });
  Object.defineProperty(document, "hidden", { configurable: true, get: () => h });
  document.dispatchEvent(new Event("visibilitychange"));
  return true;
}, hidden);

const pageErrors = (tab) => tab.evaluate(() => window.__errors);

/** Polls the collector until the person's stored events satisfy `predicate`; answers them. */
function stored(id, predicate, ms = 20000) {
  return eventually(async () => {
    const events = await storedEvents(collector, id);
    return predicate(events) && events;
  }, ms);
}

const named = (events, name) => events.filter((e) => e.name === name);
const bySeq = (events) => [...events].sort((x, y) => x.seq - y.seq);
const pathOf = (e) => new URL(e.url).pathname;

// ---- The scenarios, once per engine ----

for (const name of wanted) {
  describe(name, () => {
    let engine;
    const profiles = [];
    before(async () => {
      engine = await launchEngine(name);
    });
    after(async () => {
      for (const p of profiles) await p.close();
      await engine?.close();
    });
    /** A fresh profile (own cookies and storage), closed when the test ends. */
    async function newProfile(t) {
      const p = await engine.newProfile();
      profiles.push(p);
      t.after(() => {
        profiles.splice(profiles.indexOf(p), 1);
        return p.close();
      });
      return p;
    }

    test("the ff_id cookie holds the anonymous ID; the page view and the loader's queue are stored in order, with this engine's browser",
      { timeout: 60000 }, async (t) => {
        const profile = await newProfile(t);
        const { url } = newPage({}, `<script>footfall.track("queued_early", { at: "before the SDK loaded" });</script>`);
        const tab = await open(profile, url);
        const { anonymousId, sessionId } = await ids(tab);
        assert.match(anonymousId, UUID);
        assert.match(sessionId, UUID);

        const cookie = (await profile.cookies()).find((c) => c.name === "ff_id");
        assert.ok(cookie, "the ff_id cookie is set");
        assert.equal(cookie.value, anonymousId);
        assert.equal(cookie.sameSite, "Lax");
        assert.equal(cookie.path, "/");
        assert.equal(cookie.secure, false, "not Secure on http");
        const days = (cookie.expires * 1000 - Date.now()) / DAY;
        assert.ok(days > 364 && days <= 366, `kept for a year: expires in ${days.toFixed(2)} days`);

        await tab.evaluate(() => footfall.track("after_load"));
        await flush(tab);
        const events = bySeq(await stored(anonymousId, (ev) => ev.some((e) => e.name === "after_load")));
        assert.deepEqual(events.map((e) => e.name), ["$pageview", "queued_early", "after_load"],
          "the page view, the call queued by the loader snippet before the wasm loaded, then the later call");
        assert.deepEqual(events.map((e) => e.seq), [1, 2, 3]);
        assert.deepEqual(events[1].props, { at: "before the SDK loaded" });
        assert.equal(events[0].url, url, "the page's own URL (not the collector's)");
        assert.deepEqual([...new Set(events.map((e) => e.session_id))], [sessionId]);

        const user = (await collector.api(`/api/v1/users/${anonymousId}`)).body;
        assert.deepEqual(user.user.anonymous_ids, [anonymousId]);
        assert.equal(user.sessions.length, 1);
        assert.equal(user.sessions[0].browser, engine.browser, "the collector recognises the engine's browser");
        assert.equal(user.sessions[0].device, "desktop", "a person's desktop browser, not a bot");
        assert.deepEqual(await pageErrors(tab), []);
      });

    test("two tabs of one profile share the anonymous ID, the session and one sequence", { timeout: 60000 }, async (t) => {
      const profile = await newProfile(t);
      const { url } = newPage(QUIET);
      const a = await open(profile, url);
      const b = await open(profile, url);
      const idsA = await ids(a);
      const idsB = await ids(b);
      assert.equal(idsB.anonymousId, idsA.anonymousId, "same anonymous ID in both tabs");
      assert.equal(idsB.sessionId, idsA.sessionId, "same session in both tabs");
      // Each tab acts once the other's last write has reached it, as a person switching tabs
      // does (in WebKit, acting at once can read the number before the other tab's event).
      await track(a, "in_a");
      await caughtUp(a, b);
      await track(b, "in_b");
      await caughtUp(b, a);
      await track(a, "in_a");
      await flush(a, b);
      const events = await stored(idsA.anonymousId,
        (ev) => named(ev, "in_a").length === 2 && named(ev, "in_b").length === 1 && named(ev, "$pageview").length === 2);
      assert.deepEqual([...new Set(events.map((e) => e.session_id))], [idsA.sessionId], "one session for both tabs");
      const seqs = events.map((e) => e.seq).sort((x, y) => x - y);
      assert.deepEqual(seqs, [1, 2, 3, 4, 5], "one sequence counter across the tabs: no gaps, no repeats");
      assert.deepEqual([...await pageErrors(a), ...await pageErrors(b)], []);
    });

    test("inactivity: activity in either tab keeps the session; past sessionTimeout the next activity starts a new one",
      { timeout: 60000 }, async (t) => {
        // sessionTimeout 4 s, real waits (no fake clock in WebDriver): 1.5 s between
        // activities keeps the session, 6 s of nothing ends it.
        const profile = await newProfile(t);
        const { url } = newPage({ ...QUIET, "session-timeout": "4000" });
        const a = await open(profile, url);
        const b = await open(profile, url);
        const first = await ids(a);
        await track(a, "keep");
        await sleep(1500);
        assert.equal(await track(b, "keep"), first.sessionId, "b's activity continues the visit");
        await sleep(1500);
        assert.equal(await track(a, "keep"), first.sessionId);
        await sleep(1500);
        assert.equal(await track(b, "keep"), first.sessionId,
          "4.5 s after a's first event, but never 4 s without activity in the visit: same session");

        await sleep(6000);
        const fresh = await track(b, "after_break");
        assert.match(fresh ?? "", UUID);
        assert.notEqual(fresh, first.sessionId, "6 idle seconds end a session whose timeout is 4 s");
        // A person's pause before acting in the other tab. Needed by WebKit: a cookie written in
        // one tab reaches another tab's document.cookie asynchronously (each tab has its own web
        // process, whose cookie cache the network process updates by message); under load, a
        // tab acting 0.4 s after the other started a new session still read the old one, and
        // started a third session.
        await sleep(1500);
        assert.equal(await track(a, "after_break"), fresh, "the other tab joins the new session");
        assert.equal((await ids(a)).anonymousId, first.anonymousId, "same visitor");

        await flush(a, b);
        const events = await stored(first.anonymousId, (ev) => named(ev, "after_break").length === 2);
        assert.deepEqual([...new Set(named(events, "keep").map((e) => e.session_id))], [first.sessionId]);
        assert.deepEqual([...new Set(named(events, "after_break").map((e) => e.session_id))], [fresh]);
        assert.deepEqual(named(events, "after_break").map((e) => e.seq).sort(), [1, 2],
          "the new session numbers its events from 1");
      });

    test('sessionScope "tab": a reload keeps the tab\'s session, another tab has its own', { timeout: 60000 }, async (t) => {
      const profile = await newProfile(t);
      const { url } = newPage({ ...QUIET, "session-scope": "tab" });
      const one = await open(profile, url);
      const s1 = (await ids(one)).sessionId;
      assert.match(s1, UUID);
      await one.reload();
      await ready(one);
      assert.equal(await track(one, "after_reload"), s1, "a reload is not closing the tab: same session");
      await flush(one);

      const two = await open(profile, url);
      const idsTwo = await ids(two);
      assert.match(idsTwo.sessionId, UUID);
      assert.notEqual(idsTwo.sessionId, s1, "each tab has its own session");
      assert.equal(idsTwo.anonymousId, (await ids(one)).anonymousId, "but the same visitor");
      await track(two, "in_two");
      await flush(two);
      const events = await stored(idsTwo.anonymousId, (ev) => ev.some((e) => e.name === "in_two") &&
        ev.some((e) => e.name === "after_reload") && named(ev, "$pageview").length === 3);
      assert.deepEqual(named(events, "$pageview").map((e) => e.session_id).sort(), [s1, s1, idsTwo.sessionId].sort(),
        "the load and the reload in tab one's session, the other tab's load in its own");
      assert.equal(named(events, "in_two")[0].session_id, idsTwo.sessionId);
    });

    test("identify() joins the visitor to the user; reset() starts a new visitor and session", { timeout: 60000 }, async (t) => {
      const profile = await newProfile(t);
      const { url } = newPage(QUIET);
      const tab = await open(profile, url);
      const before = await ids(tab);
      await tab.evaluate(() => {
        footfall.identify(`ann-${location.port}@example.com`, { plan: "pro" });
        footfall.register({ tier: "gold" });
        footfall.track("after_identify");
      });
      const userId = (await ids(tab)).userId;
      assert.match(userId, /^ann-\d+@example\.com$/);
      await tab.reload();
      await ready(tab);
      assert.equal((await ids(tab)).userId, userId, "the user ID is kept across a reload");
      await flush(tab);

      await tab.evaluate(() => footfall.reset());
      const afterReset = await ids(tab);
      assert.match(afterReset.anonymousId, UUID);
      assert.notEqual(afterReset.anonymousId, before.anonymousId, "a new anonymous ID");
      assert.equal(afterReset.userId, null, "no user ID");
      assert.equal((await profile.cookies()).find((c) => c.name === "ff_id")?.value, afterReset.anonymousId,
        "ff_id holds the new ID");
      const newSession = await track(tab, "after_reset");
      assert.notEqual(newSession, before.sessionId, "a new session");
      await flush(tab);

      const ann = await eventually(async () => {
        const r = await collector.api(`/api/v1/users/${encodeURIComponent(userId)}`);
        return r.status === 200 && r.body.sessions.some((s) => s.events.some((e) => e.name === "after_identify")) && r.body;
      });
      assert.equal(ann.user.user_id, userId);
      assert.deepEqual(ann.user.anonymous_ids, [before.anonymousId]);
      assert.equal(ann.user.properties.plan, "pro", "traits become user properties");
      const annEvents = ann.sessions.flatMap((s) => s.events);
      assert.ok(annEvents.some((e) => e.name === "$pageview"), "the events before identify count for the user");
      assert.equal(annEvents.find((e) => e.name === "after_identify").props.tier, "gold");

      const fresh = await stored(afterReset.anonymousId, (ev) => ev.some((e) => e.name === "after_reset"));
      const sent = named(fresh, "after_reset")[0];
      assert.equal(sent.session_id, newSession);
      assert.equal(sent.props.tier, undefined, "registered properties are cleared");
      assert.equal((await collector.api(`/api/v1/users/${afterReset.anonymousId}`)).body.user.user_id, null,
        "the new visitor is not joined to the user");
      assert.deepEqual(await pageErrors(tab), []);
    });

    test("optOut(): nothing sent or stored, kept across a reload; optIn() resumes", { timeout: 60000 }, async (t) => {
      const profile = await newProfile(t);
      const { dir, url } = newPage(QUIET);
      const tab = await open(profile, url);
      const { anonymousId } = await ids(tab);
      await flush(tab);
      const fromThisPage = () => gateway.batches.filter((b) => b.events.some((e) => e.page?.url?.includes(`${dir}/`)));
      const sentBefore = fromThisPage().length;

      await tab.evaluate(() => footfall.optOut());
      assert.equal(await tab.evaluate(() => footfall.isOptedOut()), true);
      const names = async () => (await profile.cookies()).map((c) => c.name);
      assert.ok(!(await names()).includes("ff_id"), "the ff_id cookie is removed");
      assert.ok(!(await names()).includes("ff_s"), "the session cookie is removed");
      await tab.evaluate(() => footfall.track("while_opted_out"));
      await flush(tab);
      await setHidden(tab, true); // the page-hide beacon, which must carry nothing
      await setHidden(tab, false);

      await tab.reload(); // a page view that must not be sent
      await loaded(tab);
      assert.equal(await tab.evaluate(() => footfall.isOptedOut()), true, "the opt-out survives a reload");
      assert.ok(!(await names()).includes("ff_id"), "no ff_id after the reload either");
      await tab.evaluate(() => footfall.track("opted_out_after_reload"));
      await flush(tab);
      const kept = await tab.evaluate(() => document.cookie + JSON.stringify({ ...localStorage }) +
        JSON.stringify({ ...sessionStorage }));
      assert.ok(!kept.includes(anonymousId), "the old anonymous ID is stored nowhere");
      await sleep(500);
      assert.deepEqual(fromThisPage().slice(sentBefore).flatMap((b) => b.events.map((e) => e.name)), [],
        "nothing was sent while opted out");

      await tab.evaluate(() => footfall.optIn());
      assert.equal(await tab.evaluate(() => footfall.isOptedOut()), false);
      await tab.evaluate(() => footfall.track("after_opt_in"));
      await flush(tab);
      const now = await ids(tab);
      assert.match(now.anonymousId, UUID);
      assert.equal((await profile.cookies()).find((c) => c.name === "ff_id")?.value, now.anonymousId, "ff_id is set again");
      await stored(now.anonymousId, (ev) => ev.some((e) => e.name === "after_opt_in"));
      const old = (await storedEvents(collector, anonymousId)).map((e) => e.name);
      assert.ok(!old.includes("while_opted_out") && !old.includes("opted_out_after_reload"), `${old}`);
      assert.deepEqual(await pageErrors(tab), []);
    });

    test("SPA page views: pushState, replaceState to a new path (not the same URL), popstate", { timeout: 60000 }, async (t) => {
      const profile = await newProfile(t);
      const { dir, url } = newPage(QUIET);
      const tab = await open(profile, url);
      const { anonymousId } = await ids(tab);
      await tab.evaluate((d) => {
        history.pushState({ step: 1 }, "", `${d}/cart?step=1`);
        history.replaceState({ scroll: 120 }, "", location.href); // what routers do: no page view
        history.replaceState({}, "", `${d}/renamed`);
        return true;
      }, dir);
      await tab.evaluate(() => new Promise((resolve) => {
        addEventListener("popstate", () => resolve(location.pathname), { once: true });
        history.back();
      }));
      await tab.evaluate(() => footfall.track("barrier"));
      await flush(tab);
      const events = bySeq(await stored(anonymousId, (ev) => ev.some((e) => e.name === "barrier")));
      assert.deepEqual(named(events, "$pageview").map(pathOf),
        [`${dir}/page.html`, `${dir}/cart`, `${dir}/renamed`, `${dir}/page.html`]);
      assert.match(named(events, "$pageview")[1].url, /\/cart\?step=1$/, "the page view has the URL pushed");
      assert.deepEqual(named(events, "$pageleave").map(pathOf), [`${dir}/page.html`, `${dir}/cart`, `${dir}/renamed`],
        "each page left has its $pageleave");
      assert.deepEqual(await pageErrors(tab), []);
    });

    test("a restore from the back/forward cache records one page view", { timeout: 60000 }, async (t) => {
      const profile = await newProfile(t);
      const { dir, url } = newPage(QUIET);
      const away = site.page(`${dir}/away.html`, "<!doctype html><title>Away</title><p>No SDK here.</p>");
      const tab = await open(profile, url);
      const { anonymousId } = await ids(tab);
      await flush(tab);
      await tab.goto(away);
      await tab.back();
      const shows = await waitFor(tab, () => location.pathname.endsWith("/page.html") && window.__shows?.length &&
        window.__shows, undefined, 15000, "back on the SDK's page");
      if (name === "firefox") {
        // KNOWN BUG (Firefox only): the SDK holds a Web Lock for the page's life (its outbox
        // ownership, sdk-wasm/src/api.rs `ask_lock(.., hold = true, ..)`), and Firefox keeps no page
        // holding a Web Lock in its back/forward cache: back is a fresh load (a page without
        // the SDK, or with `navigator.locks` removed, is restored). The page view is still
        // recorded once. When the SDK lets go of the lock on pagehide, this turns into the
        // restore expected of the other engines: then drop this branch.
        assert.deepEqual(shows, [false], `Firefox now restores the SDK's page: the Web Lock bug is fixed, update this test`);
      } else {
        assert.deepEqual(shows, [false, true],
          `${name} restored the page from the back/forward cache (pageshow.persisted): ${JSON.stringify(shows)}`);
      }
      await ready(tab);
      await tab.evaluate(() => footfall.track("barrier"));
      await flush(tab);
      const events = bySeq(await stored(anonymousId, (ev) => ev.some((e) => e.name === "barrier")));
      assert.deepEqual(named(events, "$pageview").map(pathOf), [`${dir}/page.html`, `${dir}/page.html`],
        "the first load and the restore: two page views, nothing from the page without the SDK");
      // WebKit rejects the pending request of the lock the SDK holds for the page's life when
      // the page enters the back/forward cache (an AbortError); the SDK's host catches it, so
      // no unhandled rejection reaches the page.
      assert.deepEqual(await pageErrors(tab), []);
    });

    test("hiding the page sends what is queued, with no flush and no timer", { timeout: 60000 }, async (t) => {
      const profile = await newProfile(t);
      const { url } = newPage(QUIET);
      const tab = await open(profile, url);
      const { anonymousId } = await ids(tab);
      await flush(tab);
      await tab.evaluate(() => {
        for (let i = 0; i < 3; i++) footfall.track("queued_at_hide", { i });
      });
      await setHidden(tab, true);
      const events = await stored(anonymousId, (ev) => named(ev, "queued_at_hide").length === 3, 10000);
      assert.deepEqual(named(events, "queued_at_hide").map((e) => e.props.i).sort(), [0, 1, 2]);
      assert.deepEqual(await pageErrors(tab), []);
    });

    test("closing the tab right after track() delivers the event (in Firefox, at the latest with the next page load)",
      { timeout: 60000 }, async (t) => {
        const profile = await newProfile(t);
        const { url } = newPage(QUIET);
        const tab = await open(profile, url);
        const { anonymousId } = await ids(tab);
        await flush(tab); // the page view sent: nothing queued, nothing in flight
        const errors = await pageErrors(tab);
        await tab.evaluate(() => footfall.track("closed_right_after"));
        await tab.close();
        const sentBy = () => JSON.stringify(gateway.batches
          .filter((b) => b.events.some((x) => x.anonymous_id === anonymousId))
          .map((b) => [b.status, b.events.map((x) => x.name)]));
        let events;
        if (name !== "firefox") {
          events = await stored(anonymousId, (ev) => ev.some((e) => e.name === "closed_right_after") &&
            ev.some((e) => e.name === "$pageleave"), 10000)
            .catch((e) => assert.fail(`${e.message}; sent by this visitor: ${sentBy()}`));
          assert.ok(gateway.sent("closed_right_after").some((e) => e.anonymous_id === anonymousId),
            "it left the closing page itself");
        } else {
          // KNOWN (Firefox only, tabs closed through WebDriver BiDi): closing fires
          // visibilitychange (hidden), whose beacon carries the outbox, then pagehide, whose
          // beacon (the page's $pageleave) mostly does not arrive; now and then neither leaves,
          // and the $pageleave is then not even in the outbox (bench/engines.mjs: 19 of 20
          // events, 5 of 20 page leaves). The event tracked before the close was saved in the
          // outbox when tracked: the visitor's next page load on the site sends it. The
          // $pageleave is not required here.
          const atClose = await stored(anonymousId, (ev) => ev.some((e) => e.name === "closed_right_after"), 5000)
            .catch(() => null);
          const next = await open(profile, url);
          events = await stored(anonymousId, (ev) => ev.some((e) => e.name === "closed_right_after") &&
            named(ev, "$pageview").length === 2, 15000)
            .catch((e) => assert.fail(`${e.message}; sent by this visitor: ${sentBy()}`));
          t.diagnostic(`Firefox: the event arrived ${atClose ? "at the close" : "with the next page load"}; ` +
            `the $pageleave ${events.some((e) => e.name === "$pageleave") ? "arrived" : "was lost"}`);
          assert.deepEqual(await pageErrors(next), []);
        }
        assert.equal(named(events, "closed_right_after").length, 1, "stored once");
        assert.deepEqual(errors, []);
      });

    test("the outbox survives a reload: events refused with 503 are sent by the next load, each stored once",
      { timeout: 90000 }, async (t) => {
        const profile = await newProfile(t);
        const { dir, url } = newPage(); // default options: the next load sends without a flush()
        const mine = (rec) => rec.events.some((e) => e.page?.url?.includes(`${dir}/`));
        gateway.answer = (rec) => (mine(rec) ? { status: 503 } : undefined);
        try {
          const tab = await open(profile, url);
          const { anonymousId } = await ids(tab);
          await tab.evaluate(() => {
            for (let i = 0; i < 5; i++) footfall.track("before_reload", { i });
            return footfall.flush();
          });
          // (flush() sends at once unless a retry is already waiting: the page view's 503.)
          assert.ok(gateway.batches.some((b) => mine(b) && b.status === 503),
            `this page's sends were refused: ${JSON.stringify(gateway.batches.slice(-5).map((b) => [b.status, b.events.map((x) => x.page?.url)]))}`);
          assert.equal(named(await storedEvents(collector, anonymousId), "before_reload").length, 0);
          await tab.reload(); // the leaving page's beacon gets a 503 as well
          await ready(tab);
          gateway.answer = null;
          const events = await stored(anonymousId, (ev) => named(ev, "before_reload").length >= 5 &&
            named(ev, "$pageview").length >= 2, 30000);
          assert.deepEqual(named(events, "before_reload").map((e) => e.props.i).sort(), [0, 1, 2, 3, 4], "each once");
          assert.equal(named(events, "$pageview").length, 2, "one page view per load");
          assert.deepEqual(await pageErrors(tab), []);
        } finally {
          gateway.answer = null;
        }
      });

    test("a 500 is retried with backoff, and a 429 not before its Retry-After; delivered once", { timeout: 90000 }, async (t) => {
      const profile = await newProfile(t);
      const { url } = newPage(); // default options
      const tab = await open(profile, url);
      const { anonymousId } = await ids(tab);
      await flush(tab); // the page view, out of the way
      const attempts = [];
      gateway.answer = (rec) => {
        if (!rec.events.some((e) => e.name === "retried" && e.anonymous_id === anonymousId)) return undefined;
        attempts.push(rec);
        if (attempts.length === 1) return { status: 500 };
        if (attempts.length === 2) return { status: 429, headers: { "retry-after": "3" } };
        return undefined;
      };
      try {
        await tab.evaluate(() => {
          footfall.track("retried");
          return footfall.flush(); // resolves after the first attempt (500): the retries are the SDK's own
        });
        const events = await stored(anonymousId, (ev) => ev.some((e) => e.name === "retried"), 30000);
        assert.equal(named(events, "retried").length, 1);
        const log = attempts.map((a) => `${a.status} at +${a.at - attempts[0].at} ms`).join(", ");
        assert.deepEqual(attempts.slice(0, 3).map((a) => a.status), [500, 429, 200], `attempts: ${log}`);
        assert.ok(attempts[1].at - attempts[0].answeredAt >= 500, `not retried at once after the 500: ${log}`);
        // Timers may fire a hair early in some engines; Retry-After is whole seconds.
        assert.ok(attempts[2].at - attempts[1].answeredAt >= 2950, `no send sooner than Retry-After: 3 s: ${log}`);
        assert.equal(attempts.length, 3, `once acknowledged, not sent again: ${log}`);
        assert.deepEqual(await pageErrors(tab), []);
      } finally {
        gateway.answer = null;
      }
    });
  });
}

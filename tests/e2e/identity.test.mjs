// Identity and consent rules of product.md §1 in real Chromium: reset, identify, opt-out,
// Do Not Track / Global Privacy Control, the ff_id cookie, sub-domains, blocked cookies, and
// bad input that must never reach the host page.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import {
  startCollector, startSite, launchChromium, sdkReady, sdkStarted, eventually, serveTestPage, recordBatches,
  storedEvents, setHidden, ids,
} from "./harness.mjs";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const DAY = 86_400_000;

let collector, site, browser;
const closers = [];
// The pages are on the site's own origin. Besides `http://localhost:PORT`, the site is opened
// as `http://127.0.0.1:PORT` (the cookie on an IP address) and as two sub-domains mapped to
// 127.0.0.1: every one of these origins may send with the demo key.
const SUBDOMAINS = ["a.footfall.test", "b.footfall.test"];
before(async () => {
  collector = await startCollector([
    "--site", ["demo=http://localhost:*", "http://127.0.0.1:*", ...SUBDOMAINS.map((h) => `http://${h}:*`)].join(","),
  ]);
  site = await startSite(collector.url);
  browser = await launchChromium();
});
after(async () => {
  for (const c of closers.reverse()) await c.close().catch(() => {});
  await browser?.close();
  await collector?.stop();
  await site?.close();
});

async function newContext(b = browser) {
  const context = await b.newContext();
  closers.push(context);
  return context;
}

async function open(context, url, ready = sdkReady) {
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e));
  page.errors = errors;
  await page.goto(url);
  await ready(page);
  return page;
}

const demo = () => `${site.url}/demo/index.html`;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const cookie = async (context, name) => (await context.cookies()).find((c) => c.name === name);

/** Waits until the collector has events for `id` that satisfy `predicate`; answers them. */
function stored(id, predicate) {
  return eventually(async () => {
    const events = await storedEvents(collector, id);
    return predicate(events) && events;
  });
}

/** Gives the page every chance to send: flush, the flush timer, and the page-hide beacon. */
async function letItSend(page) {
  await page.evaluate(() => footfall.flush());
  await setHidden(page, true);
  await sleep(1200);
  await setHidden(page, false);
}

test("reset(): new anonymous ID, new session, no user ID, no registered properties",
  { timeout: 30000 }, async () => {
    const context = await newContext();
    const batches = recordBatches(context);
    const page = await open(context, demo());
    await page.evaluate(() => {
      footfall.identify("bob@example.com");
      footfall.register({ tier: "gold" });
      footfall.track("before_reset");
    });
    const before = await ids(page);
    assert.equal(before.userId, "bob@example.com");

    await page.evaluate(() => footfall.reset());
    const afterReset = await ids(page);
    assert.match(afterReset.anonymousId ?? "", UUID);
    assert.notEqual(afterReset.anonymousId, before.anonymousId, "a new anonymous ID");
    assert.ok(afterReset.userId == null, `no user ID after reset, got ${JSON.stringify(afterReset.userId)}`);
    assert.equal((await cookie(context, "ff_id"))?.value, afterReset.anonymousId, "ff_id holds the new ID");

    await page.evaluate(() => footfall.track("after_reset"));
    const newSession = await page.evaluate(() => footfall.getSessionId());
    assert.match(newSession ?? "", UUID);
    assert.notEqual(newSession, before.sessionId, "a new session");
    await page.evaluate(() => footfall.flush());

    const sent = await eventually(() => batches.events.find((e) => e.name === "after_reset"));
    assert.equal(sent.anonymous_id, afterReset.anonymousId);
    assert.equal(sent.session_id, newSession);
    assert.ok(sent.user_id == null, "the event after reset carries no user ID");
    assert.equal(sent.props.tier, undefined, "registered properties are cleared");
    const beforeSent = batches.events.find((e) => e.name === "before_reset");
    assert.equal(beforeSent.props.tier, "gold", "register() added the property before the reset");
    assert.equal(beforeSent.user_id, "bob@example.com");

    await stored(afterReset.anonymousId, (ev) => ev.some((e) => e.name === "after_reset"));
    const fresh = await collector.api(`/api/v1/users/${afterReset.anonymousId}`);
    assert.equal(fresh.body.user.user_id, null, "the new visitor is not joined to bob");
    const bob = await collector.api("/api/v1/users/bob@example.com");
    assert.deepEqual(bob.body.user.anonymous_ids, [before.anonymousId]);
    assert.deepEqual(page.errors, []);
  });

test("identify(): later events carry the user ID; earlier ones join the user", { timeout: 30000 }, async () => {
  const context = await newContext();
  const batches = recordBatches(context);
  const page = await open(context, demo());
  const { anonymousId } = await ids(page);
  await page.evaluate(() => footfall.track("before_identify"));
  await page.evaluate(() => footfall.flush());
  await page.evaluate(() => {
    footfall.identify("ann@example.com", { plan: "pro" });
    footfall.track("after_identify");
  });
  assert.equal(await page.evaluate(() => footfall.getUserId()), "ann@example.com");
  await page.evaluate(() => footfall.flush());

  const after = await eventually(() => batches.events.find((e) => e.name === "after_identify"));
  assert.equal(after.user_id, "ann@example.com", "events after identify carry user_id");
  assert.equal(after.anonymous_id, anonymousId, "and still the anonymous ID");
  const earlier = batches.events.find((e) => e.name === "before_identify");
  assert.ok(earlier.user_id == null, "the event before identify was sent without a user ID");

  const r = await eventually(async () => {
    const res = await collector.api("/api/v1/users/ann@example.com");
    const names = res.body.sessions?.flatMap((s) => s.events.map((e) => e.name)) ?? [];
    return names.includes("after_identify") && res;
  });
  assert.equal(r.status, 200);
  assert.equal(r.body.user.user_id, "ann@example.com");
  assert.ok(r.body.user.anonymous_ids.includes(anonymousId), "the browser's anonymous ID is joined");
  const names = r.body.sessions.flatMap((s) => s.events.map((e) => e.name));
  for (const n of ["$pageview", "shop_opened", "before_identify", "after_identify"]) {
    assert.ok(names.includes(n), `${n} is part of ann's history (${names})`);
  }
  assert.equal(r.body.user.properties.plan, "pro", "traits become user properties");

  await page.reload();
  await sdkReady(page);
  assert.equal(await page.evaluate(() => footfall.getUserId()), "ann@example.com", "kept across a reload");
  assert.equal(await page.evaluate(() => footfall.getAnonymousId()), anonymousId);
  assert.deepEqual(page.errors, []);
});

test("optOut(): nothing stored or sent, kept across a reload; optIn() resumes", { timeout: 40000 }, async () => {
  const context = await newContext();
  const batches = recordBatches(context);
  const page = await open(context, demo());
  const { anonymousId } = await ids(page);
  await page.evaluate(() => footfall.flush());
  await eventually(() => batches.events.some((e) => e.name === "shop_opened"));
  const sentBefore = batches.events.length;

  await page.evaluate(() => footfall.optOut());
  assert.equal(await page.evaluate(() => footfall.isOptedOut()), true);
  assert.equal(await cookie(context, "ff_id"), undefined, "the ff_id cookie is removed");
  assert.equal(await cookie(context, "ff_s"), undefined, "the session cookie is removed");
  await page.evaluate(() => footfall.track("while_opted_out"));
  await page.click("#add-to-cart");
  await letItSend(page);

  await page.reload(); // a page view that must not be sent, and a pagehide beacon
  await sdkStarted(page);
  assert.equal(await page.evaluate(() => footfall.isOptedOut()), true, "the opt-out survives a reload");
  assert.equal(await cookie(context, "ff_id"), undefined, "no ff_id after the reload either");
  await page.evaluate(() => footfall.track("opted_out_after_reload"));
  await letItSend(page);
  const kept = await page.evaluate(() => document.cookie + JSON.stringify({ ...localStorage }) +
    JSON.stringify({ ...sessionStorage }));
  assert.ok(!kept.includes(anonymousId), "the old anonymous ID is stored nowhere");
  assert.deepEqual(batches.events.slice(sentBefore).map((e) => e.name), [],
    "nothing was sent while opted out");

  await page.evaluate(() => footfall.optIn());
  assert.equal(await page.evaluate(() => footfall.isOptedOut()), false);
  await page.evaluate(() => footfall.track("after_opt_in"));
  await page.evaluate(() => footfall.flush());
  const now = await ids(page);
  assert.match(now.anonymousId ?? "", UUID);
  assert.equal((await cookie(context, "ff_id"))?.value, now.anonymousId, "ff_id is set again");
  await stored(now.anonymousId, (ev) => ev.some((e) => e.name === "after_opt_in"));
  const old = (await storedEvents(collector, anonymousId)).map((e) => e.name);
  assert.ok(!old.includes("while_opted_out") && !old.includes("opted_out_after_reload"), `${old}`);
  assert.deepEqual(page.errors, []);
});

test("respectDnt: Global Privacy Control and Do Not Track opt the visitor out", { timeout: 40000 }, async () => {
  const gpc = () => Object.defineProperty(Navigator.prototype, "globalPrivacyControl", { get: () => true });
  const dnt = () => Object.defineProperty(Navigator.prototype, "doNotTrack", { get: () => "1" });
  const attrs = { "flush-interval": "200" };

  for (const [signal, script] of [["GPC", gpc], ["DNT", dnt]]) {
    const context = await newContext();
    await context.addInitScript(script);
    const batches = recordBatches(context);
    const url = await serveTestPage(context, site, { ...attrs, "respect-dnt": "true" });
    const page = await open(context, url, sdkStarted);
    assert.equal(await page.evaluate(() => footfall.isOptedOut()), true, `${signal} + respectDnt: opted out`);
    await page.click("#buy");
    await letItSend(page);
    assert.deepEqual(batches.events.map((e) => e.name), [], `${signal}: nothing sent`);
    assert.equal(await cookie(context, "ff_id"), undefined, `${signal}: no ff_id cookie`);
    assert.deepEqual(page.errors, []);
    await context.close();
  }

  // Same signal, respectDnt left at its default (false): tracked as usual.
  const context = await newContext();
  await context.addInitScript(gpc);
  const batches = recordBatches(context);
  const url = await serveTestPage(context, site, attrs);
  const page = await open(context, url);
  assert.equal(await page.evaluate(() => footfall.isOptedOut()), false);
  await page.click("#buy");
  await page.evaluate(() => footfall.flush());
  const { anonymousId } = await ids(page);
  await stored(anonymousId, (ev) => ev.some((e) => e.name === "buy") && ev.some((e) => e.name === "$pageview"));
  assert.ok(batches.events.some((e) => e.name === "buy"));
});

test("the ff_id cookie: SameSite=Lax, Path=/, a year, not Secure on http, renewed on each visit",
  { timeout: 30000 }, async () => {
    const context = await newContext();
    const page = await open(context, `${site.at("127.0.0.1")}/demo/index.html`);
    const { anonymousId } = await ids(page);
    const c = await cookie(context, "ff_id");
    assert.ok(c, "ff_id is set");
    assert.equal(c.value, anonymousId);
    assert.equal(c.sameSite, "Lax");
    assert.equal(c.path, "/");
    assert.equal(c.secure, false, "not Secure on http");
    assert.equal(c.httpOnly, false);
    assert.equal(c.domain, "127.0.0.1", "host-only on an IP address");
    const days = (c.expires * 1000 - Date.now()) / DAY;
    assert.ok(days > 364 && days <= 366, `expires in ${days.toFixed(2)} days`);

    await sleep(1500);
    await page.goto(`${site.at("127.0.0.1")}/demo/product.html`);
    await sdkReady(page);
    const renewed = await cookie(context, "ff_id");
    assert.equal(renewed.value, anonymousId, "same visitor on the next page");
    assert.ok(renewed.expires > c.expires, `expiry renewed on the visit (${c.expires} → ${renewed.expires})`);
  });

test("two sub-domains of one site share the visitor (cookieDomain auto)", { timeout: 40000 }, async () => {
  const subBrowser = await launchChromium(["--host-resolver-rules=MAP *.footfall.test 127.0.0.1"]);
  closers.push(subBrowser);
  const context = await newContext(subBrowser);
  const a = await open(context, `${site.at("a.footfall.test")}/demo/index.html`);
  const b = await open(context, `${site.at("b.footfall.test")}/demo/product.html`);
  const idsA = await ids(a);
  const idsB = await ids(b);
  assert.match(idsA.anonymousId ?? "", UUID);
  assert.equal(idsB.anonymousId, idsA.anonymousId, "one visitor on both sub-domains");
  assert.equal(idsB.sessionId, idsA.sessionId, "and one session");
  const c = await cookie(context, "ff_id");
  assert.equal(c.domain, ".footfall.test", "ff_id is on the parent domain");

  await a.click("#add-to-cart");
  await b.click("#add-to-cart");
  await Promise.all([a, b].map((p) => p.evaluate(() => footfall.flush())));
  const events = await stored(idsA.anonymousId, (ev) => ev.filter((e) => e.name === "add_to_cart").length === 2);
  const hosts = new Set(events.map((e) => new URL(e.url).hostname));
  assert.deepEqual([...hosts].sort(), ["a.footfall.test", "b.footfall.test"]);
  await subBrowser.close();
});

test("cookies blocked: falls back to localStorage and survives a reload", { timeout: 30000 }, async () => {
  const context = await newContext();
  await context.addInitScript(() => {
    Object.defineProperty(Document.prototype, "cookie", { configurable: true, get() { return ""; }, set() {} });
  });
  const page = await open(context, demo());
  const first = await ids(page);
  assert.match(first.anonymousId ?? "", UUID);
  assert.match(first.sessionId ?? "", UUID);
  assert.deepEqual((await context.cookies()).map((c) => c.name), [], "no cookie could be written");
  const local = await page.evaluate(() => JSON.stringify({ ...localStorage }));
  assert.ok(local.includes(first.anonymousId), `the anonymous ID is in localStorage: ${local.slice(0, 300)}`);

  await page.reload();
  await sdkReady(page);
  const again = await ids(page);
  assert.equal(again.anonymousId, first.anonymousId, "same visitor after a reload");
  assert.equal(again.sessionId, first.sessionId, "same session after a reload");
  const other = await open(context, `${site.url}/demo/product.html`);
  assert.equal((await ids(other)).anonymousId, first.anonymousId, "and in another tab");

  await page.click("#add-to-cart");
  await page.evaluate(() => footfall.flush());
  await other.evaluate(() => footfall.flush());
  const events = await stored(first.anonymousId, (ev) =>
    ev.some((e) => e.name === "add_to_cart") && ev.filter((e) => e.name === "$pageview").length === 3);
  assert.deepEqual([...new Set(events.map((e) => e.session_id))], [first.sessionId]);
});

test("1,000 calls with bad arguments never reach the page, and the SDK keeps working",
  { timeout: 60000 }, async () => {
    const context = await newContext();
    await context.addInitScript(() => {
      window.__errors = [];
      addEventListener("error", (e) => __errors.push(`error: ${e.message}`));
      addEventListener("unhandledrejection", (e) => __errors.push(`unhandledrejection: ${e.reason}`));
    });
    const page = await open(context, demo());
    const result = await page.evaluate(async () => {
      let seed = 0x5eed;
      const rnd = () => {
        seed = (seed + 0x6d2b79f5) | 0;
        let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
        t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
        return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
      };
      const deep = (n, arr) => {
        const root = arr ? [] : {};
        let o = root;
        for (let i = 0; i < n; i++) {
          const next = arr ? [] : {};
          if (arr) o.push(next); else o.child = next;
          o = next;
        }
        return root;
      };
      const cycle = { a: 1 };
      cycle.self = cycle;
      const cycleArr = [];
      cycleArr.push(cycleArr);
      const huge = "x".repeat(1_000_000);
      const values = [
        0, -1, 1.5, NaN, Infinity, -Infinity, 2 ** 64, -0, 10n, null, undefined, true, false,
        "", "   ", huge, "\u0000", "\ud800", "名前", "a".repeat(201), Symbol("s"), Symbol.iterator,
        () => 1, function named() {}, class K {}, async () => {}, [], [1, 2, 3], [null, undefined], cycle,
        cycleArr, deep(200), deep(200, true), { nested: deep(200) }, new Date(), /re/g, new Map([[1, 2]]),
        new Set([1]), new Error("e"), Object.create(null), new Uint8Array(8), Promise.resolve(1),
        window, document, document.body, { toJSON() { throw new Error("toJSON"); } },
        { get boom() { throw new Error("getter"); } },
        new Proxy({}, { get() { throw new Error("proxy get"); }, ownKeys() { throw new Error("proxy keys"); } }),
        { a: huge }, { a: Symbol("v") }, { a: 10n }, { a: () => 1 }, { a: undefined }, { "": 1 },
        { key: 5 }, { key: "demo", sessionTimeout: "soon", sessionScope: 7 }, { plan: "pro" }, "valid_name",
      ];
      const pick = () => values[Math.floor(rnd() * values.length)];
      const fns = ["init", "page", "track", "identify", "setUserProperties", "register", "unregister",
        "reset", "flush", "optOut", "optIn", "isOptedOut", "getAnonymousId", "getSessionId", "getUserId"];
      const failures = [];
      const pending = [];
      for (let i = 0; i < 1000; i++) {
        const fn = i < fns.length ? fns[i] : fns[Math.floor(rnd() * fns.length)]; // each at least once
        const args = Array.from({ length: Math.floor(rnd() * 4) }, pick);
        try {
          if (typeof footfall[fn] !== "function") {
            failures.push(`footfall.${fn} is not a function`);
            continue;
          }
          const r = footfall[fn](...args);
          if (r && typeof r.then === "function") {
            pending.push(Promise.resolve(r).then(() => null, (e) => `${fn} rejected: ${e}`));
          }
        } catch (e) {
          failures.push(`${fn} threw: ${e}`);
        }
      }
      const settled = await Promise.race([
        Promise.all(pending),
        new Promise((r) => setTimeout(() => r(["some flush() promises never settled"]), 10000)),
      ]);
      failures.push(...settled.filter(Boolean));
      await new Promise((r) => setTimeout(r, 300));
      return { failures: [...new Set(failures)], errors: window.__errors };
    });
    assert.deepEqual(result.failures, [], "no call threw or rejected");
    assert.deepEqual(result.errors, [], "nothing reached window.onerror / unhandledrejection");
    assert.deepEqual(page.errors.map(String), [], "no pageerror");

    // Whatever state the calls left (opted out, reset, identified), a normal track still arrives.
    await page.evaluate(() => {
      footfall.optIn();
      footfall.track("after_fuzz", { ok: true });
    });
    const anonymousId = await page.evaluate(() => footfall.getAnonymousId());
    assert.match(anonymousId ?? "", UUID);
    await page.evaluate(() => footfall.flush());
    const events = await stored(anonymousId, (ev) => ev.some((e) => e.name === "after_fuzz"));
    assert.deepEqual(events.find((e) => e.name === "after_fuzz").props, { ok: true });
  });

// Strings cross into the wasm as UTF-8 (ASCII byte by byte, the rest through `encodeInto`)
// and back through the decoder: names, user IDs and properties beyond ASCII arrive as written.
test("names, user IDs and properties beyond ASCII arrive as written", { timeout: 30000 }, async () => {
  const context = await newContext();
  const batches = recordBatches(context);
  const page = await open(context, demo());
  const user = "jos\u00e9@\u4f8b\u3048.jp";
  const name = "caf\u00e9 \u2615 \u540d\u524d \ud83d\ude00";
  const props = { "cl\u00e9": "gr\u00fcne \u2713", emoji: "\ud83d\udc4d", ascii: "plain", mixed: "a\u00e9b" };
  const userId = await page.evaluate(([u, n, p]) => {
    footfall.identify(u);
    footfall.register({ "r\u00e9gion": "\u00cele-de-France" });
    footfall.track(n, p);
    return footfall.getUserId();
  }, [user, name, props]);
  assert.equal(userId, user, "the user ID reads back from the wasm as written");
  await page.evaluate(() => footfall.flush());
  const sent = await eventually(() => batches.events.find((e) => e.props?.ascii === "plain"));
  assert.equal(sent.name, name);
  assert.equal(sent.user_id, user);
  for (const [k, v] of Object.entries({ ...props, "r\u00e9gion": "\u00cele-de-France" })) {
    assert.equal(sent.props[k], v, `property ${k}`);
  }
  assert.deepEqual(page.errors, []);
});

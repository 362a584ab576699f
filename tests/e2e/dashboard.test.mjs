// The dashboard in Chromium against the real collector with generated data: each view loads
// and shows the numbers the data implies, a filter changes them, the user timeline opens, a
// saved report reopens from its shared link without the token (and shows no person), CSV
// downloads, API tokens are created, used and revoked from their page. Screenshots of each
// view go to tests/artifacts/; dashboard-overview.png (1280 px wide: the Overview page of a
// week of visitors on a collector of its own) is the README's picture.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { startCollector, launchChromium, screenshot, ARTIFACTS } from "./harness.mjs";

const TOKEN = "e2e-admin-token";
const AGENTS = {
  Chrome: "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
  Firefox: "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
};

let collector, browser;
const visitors = [];

/** 12 visitors over the past 3 days, alternating browsers; every third buys; two bounce. */
async function seed() {
  const now = Date.now();
  let n = 0;
  for (let v = 0; v < 12; v++) {
    const browserName = v % 2 ? "Firefox" : "Chrome";
    const anon = `3f0c2a1e-5b6d-4c7e-8f90-${String(v).padStart(12, "0")}`;
    const session = `019ab0b4-8a20-7000-8000-${String(v).padStart(12, "0")}`;
    const start = now - (v % 3) * 86400e3 - 3600e3;
    const names = v < 2 ? ["$pageview", "$pageleave"] : ["$pageview", "add_to_cart", ...(v % 3 === 0 ? ["purchase"] : []), "$pageleave"];
    const events = names.map((name, i) => ({
      event_id: `019ab0b4-0000-7000-8000-${String(++n).padStart(12, "0")}`,
      type: name === "$pageview" ? "page" : "track",
      name,
      timestamp: new Date(start + i * 30e3).toISOString(),
      anonymous_id: anon,
      user_id: null,
      session_id: session,
      seq: i + 1,
      page: { url: "http://shop.example/p", path: "/p", title: "P", referrer: "" },
      props: { price: 10 * (v + 1) },
    }));
    const res = await fetch(`${collector.url}/v1/batch`, {
      method: "POST",
      headers: { "content-type": "text/plain", "user-agent": AGENTS[browserName] },
      body: JSON.stringify({ key: "demo", sent_at: new Date(now).toISOString(), events }),
    });
    assert.equal((await res.json()).accepted, events.length);
    visitors.push({ anon, browser: browserName, names, session, start });
  }
  // And a crawler: stored, but left out of every view until "Include bots" is switched on.
  const bot = await fetch(`${collector.url}/v1/batch`, {
    method: "POST",
    headers: { "content-type": "text/plain", "user-agent": "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)" },
    body: JSON.stringify({ key: "demo", events: [{
      event_id: `019ab0b4-0000-7000-8000-${String(++n).padStart(12, "0")}`, type: "page", name: "$pageview",
      timestamp: new Date(now - 60e3).toISOString(), anonymous_id: "3f0c2a1e-5b6d-4c7e-8f90-b0b0b0b0b0b0",
      user_id: null, session_id: "019ab0b4-8a20-7000-8000-b0b0b0b0b0b0", seq: 1,
      page: { url: "http://shop.example/p", path: "/p", title: "P", referrer: "" }, props: {},
    }] }),
  });
  assert.equal((await bot.json()).accepted, 1);
}

before(async () => {
  collector = await startCollector();
  browser = await launchChromium();
  await seed();
});
after(async () => {
  await browser?.close();
  await collector?.stop();
});

async function signedIn() {
  const context = await browser.newContext({ acceptDownloads: true, viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e));
  await page.goto(`${collector.url}/`);
  await page.fill("input[name=token]", TOKEN);
  await page.click("button[type=submit]");
  await page.waitForSelector("#total");
  return { context, page, errors };
}

const text = async (page, sel) => (await page.textContent(sel)).trim();

test("sign in is required, and a wrong token is refused", async () => {
  const page = await browser.newPage();
  await page.goto(`${collector.url}/`);
  await page.fill("input[name=token]", "wrong");
  await page.click("button[type=submit]");
  await page.waitForSelector(".error");
  assert.match(await text(page, ".error"), /refused/);
  await page.close();
});

test("the token stays out of reach of page scripts: an HttpOnly cookie, nothing in storage; sign out ends it (#19)", async () => {
  const { context, page, errors } = await signedIn();
  const seen = await page.evaluate(() => ({ cookie: document.cookie, storage: JSON.stringify({ ...localStorage, ...sessionStorage }) }));
  assert.doesNotMatch(seen.cookie, /footfall_token/);
  assert.ok(!seen.storage.includes(TOKEN), "no token in web storage");
  const [cookie] = (await context.cookies()).filter((c) => c.name === "footfall_token");
  assert.ok(cookie && cookie.httpOnly && cookie.sameSite === "Strict" && cookie.path === "/api/", JSON.stringify(cookie));
  await page.reload();
  await page.waitForSelector("#total"); // still signed in
  await page.click("#signout");
  await page.waitForSelector("input[name=token]");
  await page.reload();
  await page.waitForSelector("input[name=token]");
  assert.equal(await page.$(".error"), null, "a plain sign-in form, no error");
  assert.deepEqual((await context.cookies()).filter((c) => c.name === "footfall_token"), []);
  assert.deepEqual(errors, []);
  await context.close();
});

test("insights: users, a filter, a split, the chart and sample users", async () => {
  const { context, page, errors } = await signedIn();
  assert.equal(await text(page, "#total"), "12", "12 visitors in the last 7 days");
  await page.waitForSelector(".chart canvas");
  await screenshot(page, "dashboard-insights");

  // A filter picked field → operator → value, the values as the collector has seen them.
  await page.selectOption("select[name=filter-field]", "browser");
  await page.waitForSelector('select[name=filter-value][data-loaded="browser"]');
  assert.deepEqual(await page.$$eval("select[name=filter-value] option", (o) => o.map((x) => x.value).filter((v) => v && v !== "\u0000typed").sort()),
    ["Chrome", "Firefox"], "the browsers seen, as choices");
  await page.selectOption("select[name=filter-op]", "eq");
  await page.selectOption("select[name=filter-value]", "Firefox");
  await page.click("#add-filter");
  await page.waitForFunction(() => document.querySelector("#total")?.textContent === "6");
  assert.deepEqual(await page.$$eval("#filter-chips > span", (s) => s.map((x) => x.firstChild.textContent)), ["browser is Firefox"]);
  assert.deepEqual(new URLSearchParams((await page.evaluate(() => location.hash)).split("?")[1]).getAll("filter"), ["browser:eq:Firefox"]);

  await page.selectOption("select[name=event]", "purchase");
  await page.waitForFunction(() => document.querySelector("#total")?.textContent === "2");
  // Who used several events: either of them (Firefox visitors 3, 5, 7, 9, 11), then one removed.
  await page.selectOption("select[name=event]", "add_to_cart");
  await page.waitForFunction(() => document.querySelector("#total")?.textContent === "5");
  assert.deepEqual(await page.$$eval("#event-chips > span", (s) => s.map((x) => x.firstChild.textContent)), ["purchase", "add_to_cart"]);
  await page.click('#event-chips button[aria-label="remove add_to_cart"]');
  await page.waitForFunction(() => document.querySelector("#total")?.textContent === "2");
  await page.selectOption("select[name=by]", "browser");
  await page.waitForFunction(() => document.querySelectorAll("#table tbody tr").length === 1);
  assert.equal(await text(page, "#table tbody tr td"), "Firefox");

  // Meet your users → the user's timeline.
  await page.click("#samples a");
  await page.waitForSelector("#timeline .session");
  const id = await text(page, "#user-id");
  const v = visitors.find((x) => x.anon === id);
  assert.ok(v, `a seeded visitor: ${id}`);
  assert.equal(v.browser, "Firefox");
  const names = await page.$$eval("#timeline tr td:nth-child(2)", (t) => t.map((x) => x.textContent));
  assert.deepEqual(names, v.names, "the session's events in order");
  await screenshot(page, "dashboard-user");
  assert.deepEqual(errors, []);
  await context.close();
});

test("insights: a custom range in a time zone, by with split, and an error shown under the controls", async () => {
  const { context, page, errors } = await signedIn();
  // A custom range: yesterday and today, in UTC.
  await page.selectOption("select[name=last]", "custom");
  await page.waitForSelector("#range input[name=from]");
  const today = new Date().toISOString().slice(0, 10);
  const yesterday = new Date(Date.now() - 86400e3).toISOString().slice(0, 10);
  await page.fill("#range input[name=from]", yesterday);
  await page.fill("#range input[name=to]", today);
  await page.fill("#range input[name=tz]", "UTC");
  await page.click("#range button[type=submit]");
  await page.waitForFunction(() => new URLSearchParams(location.hash.split("?")[1]).get("tz") === "UTC");
  await page.waitForSelector("#total");
  const q = new URLSearchParams((await page.evaluate(() => location.hash)).split("?")[1]);
  assert.equal(q.get("from"), `${yesterday}T00:00:00.000Z`);
  assert.equal(q.get("to"), `${new Date(Date.now() + 86400e3).toISOString().slice(0, 10)}T00:00:00.000Z`, "to the end of the last day");
  assert.equal(q.get("last"), null);
  const days = (v) => v.names.map((_, i) => new Date(v.start + i * 30e3).toISOString().slice(0, 10));
  const inRange = visitors.filter((v) => days(v).some((d) => d >= yesterday)).length;
  assert.equal(await text(page, "#total"), String(inRange));
  assert.equal(await page.inputValue("#range input[name=from]"), yesterday, "the range reads back as days");
  assert.equal(await page.inputValue("#range input[name=to]"), today);
  await page.waitForSelector(".chart canvas");
  await screenshot(page, "dashboard-insights-range");

  // By browser, split by event name: a row per pair, the split in a column of its own.
  await page.goto(`${collector.url}/#insights?metric=users&last=7d`);
  await page.waitForSelector("#total");
  await page.selectOption("select[name=by]", "browser");
  await page.waitForSelector("#table tbody tr");
  await page.selectOption("select[name=split]", "name");
  await page.waitForFunction(() => document.querySelectorAll("#table thead th").length === 3);
  assert.deepEqual(await page.$$eval("#table thead th", (t) => t.map((x) => x.textContent)), ["browser", "name", "users"]);
  const rows = await page.$$eval("#table tbody tr", (trs) => trs.map((tr) => [...tr.children].map((td) => td.textContent)));
  const value = (b, n) => rows.find(([k, sp]) => k === b && sp === n)?.[2];
  assert.equal(value("Firefox", "purchase"), "2", "visitors 3 and 9 bought on Firefox");
  assert.equal(value("Chrome", "purchase"), "1", "visitor 6 on Chrome");
  assert.equal(value("Chrome", "$pageview"), "6");
  assert.equal(rows.length, 8, "two browsers × four event names");
  await screenshot(page, "dashboard-insights-split");
  // A `split=` link without `by`: each day split by browser, and the controls say so.
  await page.goto(`${collector.url}/#insights?metric=users&last=7d&interval=day&split=browser`);
  await page.waitForSelector("#table tbody tr");
  assert.equal(await page.inputValue("select[name=split]"), "browser");
  assert.equal(await page.inputValue("select[name=by]"), "");
  assert.deepEqual(await page.$$eval("#table thead th", (t) => t.map((x) => x.textContent)), ["day", "browser", "users"]);
  const perDay = await page.$$eval("#table tbody tr", (trs) => trs.map((tr) => [...tr.children].map((td) => td.textContent)));
  assert.ok(perDay.every(([day, b]) => !/T\d\d:/.test(day) && ["Chrome", "Firefox"].includes(b)), JSON.stringify(perDay));
  assert.equal(perDay.filter(([, b]) => b === "Firefox").reduce((a, [, , n]) => a + Number(n), 0), 6, "every Firefox visitor on one of the days");

  // While an answer is on its way, the controls are there and say it is loading.
  let release;
  const held = new Promise((r) => (release = r));
  await page.route("**/api/v1/insights?*", async (route) => {
    await held;
    await route.continue();
  });
  await page.selectOption("select[name=metric]", "sessions");
  await page.waitForSelector("#loading");
  assert.ok(await page.$("#controls select[name=metric]"), "the controls stay while loading");
  release();
  await page.waitForSelector("#total");
  await page.unroute("**/api/v1/insights?*");

  // A bad filter from a link: the error shows under the controls, which still work.
  await page.goto(`${collector.url}/#insights?metric=users&last=7d&filter=nope:eq:1`);
  await page.waitForSelector("#error");
  assert.match(await text(page, "#error"), /unknown field/);
  assert.ok(await page.$("#controls select[name=metric]"), "the controls are kept");
  await screenshot(page, "dashboard-insights-error");
  await page.click("#filter-chips button");
  await page.waitForFunction(() => document.querySelector("#total")?.textContent === "12");
  assert.equal(await page.$("#error"), null);
  assert.deepEqual(errors, []);
  await context.close();
});

test("overview: visitors, page views, sessions, bounce and visit time, then lists that open the tool filtered", async () => {
  const { context, page, errors } = await signedIn();
  const refused = []; // the dashboard's Content-Security-Policy refuses inline styles and scripts
  page.on("console", (m) => /Content Security Policy/.test(m.text()) && refused.push(m.text()));
  await page.click('header a[href="#overview"]');
  await page.waitForSelector("#visitors");
  // 12 visitors, one page view and one session each; two bounced; sessions of 30 s (the two
  // bounces), 90 s (the three buyers) and 60 s (the seven others): 62.5 s on average.
  assert.equal(await text(page, "#visitors"), "12");
  assert.equal(await text(page, "#pageviews"), "12");
  assert.equal(await text(page, "#sessions"), "12");
  assert.equal(await text(page, "#bounce"), "16.7 %");
  assert.equal(await text(page, "#duration"), "1.0 min");
  await page.waitForSelector(".chart canvas");
  const list = (id) => page.$$eval(`#${id} tbody tr`, (trs) => trs.map((tr) => [...tr.children].map((td) => td.textContent)));
  assert.deepEqual(await list("pages"), [["/p", "12"]]);
  assert.deepEqual(await list("entry"), [["/p", "12"]]);
  assert.deepEqual((await list("browsers")).sort(), [["Chrome", "6"], ["Firefox", "6"]]);
  assert.deepEqual(await list("devices"), [["desktop", "12"]]);
  assert.deepEqual(await list("referrers"), [["Direct / none", "12"]]);
  await screenshot(page, "dashboard-overview-page");
  // The same custom range as the tool's: today alone, in UTC.
  await page.selectOption("select[name=last]", "custom");
  await page.waitForSelector("#range input[name=from]");
  const today = new Date().toISOString().slice(0, 10);
  await page.fill("#range input[name=from]", today);
  await page.fill("#range input[name=to]", today);
  await page.fill("#range input[name=tz]", "UTC");
  await page.click("#range button[type=submit]");
  await page.waitForFunction(() => new URLSearchParams(location.hash.split("?")[1]).get("tz") === "UTC");
  const todays = visitors.filter((v) => v.names.some((_, i) => new Date(v.start + i * 30e3).toISOString().slice(0, 10) === today)).length;
  await page.waitForFunction((n) => document.querySelector("#visitors")?.textContent === String(n), todays);
  await page.selectOption("select[name=last]", "7d");
  await page.waitForFunction(() => document.querySelector("#visitors")?.textContent === "12");
  // A row opens the tool with its filter.
  await page.click('#browsers a:has-text("Firefox")');
  await page.waitForFunction(() => document.querySelector("#total")?.textContent === "6");
  const q = new URLSearchParams((await page.evaluate(() => location.hash)).split("?")[1]);
  assert.deepEqual(q.getAll("filter"), ["browser:eq:Firefox"]);
  assert.deepEqual(refused, []);
  assert.deepEqual(errors, []);
  await context.close();
});

test("site picker: two sites kept apart in every view, the choice kept in the URL and across the nav", async (t) => {
  // A collector of its own with two sites and no demo site.
  const two = await startCollector(["--site", "shop=http://localhost:*", "--site", "blog=http://localhost:*"]);
  t.after(() => two.stop());
  const now = Date.now();
  let n = 0;
  for (const [v, key] of [[0, "shop"], [1, "shop"], [2, "blog"]]) {
    const events = ["$pageview", "$pageleave"].map((name, i) => ({
      event_id: `019ab0b6-0000-7000-8000-${String(++n).padStart(12, "0")}`,
      type: name === "$pageview" ? "page" : "track", name,
      timestamp: new Date(now - 3600e3 + i * 20e3).toISOString(),
      anonymous_id: `7a1f0c2a-1b6d-4c7e-8f90-${String(v).padStart(12, "0")}`, user_id: null,
      session_id: `019ab0b6-8a20-7000-8000-${String(v).padStart(12, "0")}`, seq: i + 1,
      page: { url: `http://${key}.example/`, path: key === "blog" ? "/post" : "/", title: key, referrer: "" }, props: {},
    }));
    const res = await fetch(`${two.url}/v1/batch`, {
      method: "POST",
      headers: { "content-type": "text/plain", "user-agent": AGENTS.Firefox },
      body: JSON.stringify({ key, sent_at: new Date(now).toISOString(), events }),
    });
    assert.equal((await res.json()).accepted, events.length);
  }
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  t.after(() => context.close());
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e));
  await page.goto(`${two.url}/`);
  await page.fill("input[name=token]", TOKEN);
  await page.click("button[type=submit]");
  await page.waitForSelector("#total");
  assert.equal(await text(page, "#total"), "3", "every site's visitors");
  await page.waitForSelector("#site:not([hidden])");
  assert.deepEqual(await page.$$eval("#site option", (o) => o.map((x) => x.textContent)), ["All sites", "blog", "shop"]);

  await page.selectOption("#site", "blog");
  await page.waitForFunction(() => document.querySelector("#total")?.textContent === "1");
  assert.deepEqual(new URLSearchParams((await page.evaluate(() => location.hash)).split("?")[1]).getAll("site"), ["blog"]);
  // The filter picker's values are the site's own.
  await page.selectOption("select[name=filter-field]", "path");
  await page.waitForSelector('select[name=filter-value][data-loaded="path"]');
  assert.deepEqual(await page.$$eval("select[name=filter-value] option", (o) => o.map((x) => x.value).filter((v) => v.startsWith("/"))), ["/post"]);

  // The nav keeps the site: the overview and the sessions of the blog alone.
  await page.click('header a[href="#overview"]');
  await page.waitForSelector("#visitors");
  assert.equal(await text(page, "#visitors"), "1");
  assert.match(await page.evaluate(() => location.hash), /site=blog/);
  assert.deepEqual(await page.$$eval("#pages tbody tr td:first-child", (t) => t.map((x) => x.textContent)), ["/post"]);
  await screenshot(page, "dashboard-site-picker");
  await page.click('header a[href="#sessions"]');
  await page.waitForSelector("#total-sessions");
  assert.equal(await text(page, "#total-sessions"), "1");

  // Back to every site.
  await page.selectOption("#site", "");
  await page.waitForFunction(() => document.querySelector("#total-sessions")?.textContent === "3");
  assert.doesNotMatch(await page.evaluate(() => location.hash), /site=/);

  // Nothing matches: without a demo site, the empty state does not send anyone to the demo shop.
  await page.goto(`${two.url}/#insights?metric=users&last=7d&filter=browser:eq:Nothing`);
  await page.waitForSelector("#empty");
  assert.doesNotMatch(await text(page, "#empty"), /demo/);
  assert.deepEqual(errors, []);
});

test("the Include bots switch brings the crawler back, in insights, users and sessions", async () => {
  const { context, page, errors } = await signedIn();
  assert.equal(await text(page, "#total"), "12");
  await page.check("input[name=bots]");
  await page.waitForFunction(() => document.querySelector("#total")?.textContent === "13");
  assert.match(await page.evaluate(() => location.hash), /bots=include/);
  await page.selectOption("select[name=by]", "device");
  await page.waitForFunction(() => [...document.querySelectorAll("#table tbody tr td:first-child")].some((td) => td.textContent === "bot"));
  await screenshot(page, "dashboard-bots");
  // The crawler is among the sample users, and its page opens (with bots included).
  await page.click('#samples a:has-text("b0b0b0b0b0b0")');
  await page.waitForSelector("#timeline .session");
  assert.match(await text(page, "#timeline .session"), /bot/);
  await page.goBack();
  await page.waitForSelector("#total");
  await page.click('header a[href="#users"]');
  await page.waitForSelector("#users tbody tr");
  assert.equal(await page.$$eval("#users tbody tr", (r) => r.length), 12);
  await page.check("input[name=bots]");
  await page.waitForFunction(() => document.querySelectorAll("#users tbody tr").length === 13);
  await page.click('header a[href="#sessions"]');
  await page.waitForSelector("#total-sessions");
  assert.equal(await text(page, "#total-sessions"), "12");
  await page.check("input[name=bots]");
  await page.waitForFunction(() => document.querySelector("#total-sessions")?.textContent === "13");
  assert.deepEqual(errors, []);
  await context.close();
});

test("users list and session statistics with drill-down by user", async () => {
  const { context, page } = await signedIn();
  await page.click('header a[href="#users"]');
  await page.waitForSelector("#users tbody tr");
  assert.equal(await page.$$eval("#users tbody tr", (r) => r.length), 12);
  await screenshot(page, "dashboard-users");
  // The feed filtered as the tool is: Firefox visitors, then those of them who bought (3 and 9).
  await page.selectOption("select[name=filter-field]", "browser");
  await page.waitForSelector('select[name=filter-value][data-loaded="browser"]');
  await page.selectOption("select[name=filter-value]", "Firefox");
  await page.click("#add-filter");
  await page.waitForFunction(() => document.querySelectorAll("#users tbody tr").length === 6);
  await page.selectOption("select[name=event]", "purchase");
  await page.waitForFunction(() => document.querySelectorAll("#users tbody tr").length === 2);
  const buyers = await page.$$eval("#users tbody tr td:first-child", (t) => t.map((x) => x.textContent).sort());
  assert.deepEqual(buyers, [visitors[3].anon, visitors[9].anon]);
  await page.click('#filter-chips button');
  // The filter removed: the three buyers on either browser.
  await page.waitForFunction(() => document.querySelectorAll("#users tbody tr").length === 3);

  await page.click('header a[href="#sessions"]');
  await page.waitForSelector("#total-sessions");
  assert.equal(await text(page, "#total-sessions"), "12");
  assert.equal(await text(page, "#bounce-rate"), "16.7 %", "2 of 12 sessions bounced");
  assert.doesNotMatch(await page.evaluate(() => document.querySelector("main").innerText), /null/);
  await page.selectOption("select[name=split]", "user");
  await page.waitForSelector("#split tbody tr a");
  assert.equal(await page.$$eval("#split tbody tr", (r) => r.length), 12);
  await screenshot(page, "dashboard-sessions");
  await page.click("#split tbody tr a");
  await page.waitForSelector("#timeline .session");

  // A bad range in a link: the error under the controls, which undo it.
  await page.goto(`${collector.url}/#sessions?last=soon`);
  await page.waitForSelector("#error");
  await page.selectOption("select[name=last]", "7d");
  await page.waitForFunction(() => document.querySelector("#total-sessions")?.textContent === "12");
  await page.goto(`${collector.url}/#users?last=soon`);
  await page.waitForSelector("#error");
  await page.selectOption("select[name=last]", "30d");
  await page.waitForFunction(() => document.querySelectorAll("#users tbody tr").length === 12);
  await context.close();
});

test("sessions: a chart over time, the paged session list, a custom range; a person's page and a session's page", async () => {
  const { context, page, errors } = await signedIn();
  await page.click('header a[href="#sessions"]');
  await page.waitForSelector("#sessions-chart .chart canvas");

  // The list, five at a time: newest first ("now" of each visitor's batch is corrected by the
  // collector's clock at arrival, so of one day's visitors the last sent is the newest), "More"
  // to the end.
  await page.goto(`${collector.url}/#sessions?last=7d&limit=5`);
  await page.waitForSelector("#session-list tbody tr");
  const rows = () => page.$$eval("#session-list tbody tr td:nth-child(2)", (t) => t.map((x) => x.textContent));
  assert.equal((await rows()).length, 5);
  await page.click("#more-sessions");
  await page.waitForFunction(() => document.querySelectorAll("#session-list tbody tr").length === 10);
  await page.click("#more-sessions");
  await page.waitForFunction(() => document.querySelectorAll("#session-list tbody tr").length === 12);
  assert.equal(await page.isHidden("#more-sessions"), true, "no more after the last page");
  assert.deepEqual(await rows(), [9, 6, 3, 0, 10, 7, 4, 1, 11, 8, 5, 2].map((v) => visitors[v].anon));
  assert.doesNotMatch(await page.evaluate(() => document.querySelector("#session-list").innerText), /null|undefined|\d{4}-\d\d-\d\dT/);

  // A custom range of two days, in the viewer's zone: the sessions of yesterday and today.
  const zone = await page.evaluate(() => Intl.DateTimeFormat().resolvedOptions().timeZone);
  const day = (ms) => new Date(ms).toLocaleDateString("en-CA", { timeZone: zone });
  await page.selectOption("select[name=last]", "custom");
  await page.waitForSelector("#range");
  await page.fill("#range input[name=from]", day(visitors[1].start));
  await page.fill("#range input[name=to]", day(visitors[0].start));
  await page.click("#range button[type=submit]");
  await page.waitForFunction(() => document.querySelector("#total-sessions")?.textContent === "8");
  await page.waitForFunction(() => document.querySelectorAll("#session-list tbody tr").length === 5);
  assert.deepEqual(await rows(), [9, 6, 3, 0, 10].map((v) => visitors[v].anon));
  await page.click("#session-list tbody tr a");
  await page.waitForSelector("#session-events tbody tr");
  assert.equal(await page.evaluate(() => location.hash), `#session/${visitors[9].session}`);

  const v = visitors[3]; // views the page, adds to the cart, buys, leaves
  await page.goto(`${collector.url}/#user/${v.anon}`);
  await page.waitForSelector("#timeline .session");
  assert.match(await text(page, "#user-id + p"), /^1 session ·/, "one session, in the singular");
  const person = await page.evaluate(() => document.querySelector("main").innerText);
  assert.doesNotMatch(person, /null|undefined|\d{4}-\d\d-\d\dT\d\d/, "no null, no raw ISO times");
  await page.click("#timeline .session-link");
  await page.waitForSelector("#session-events tbody tr");
  assert.equal(await page.evaluate(() => location.hash), `#session/${v.session}`);
  assert.deepEqual(await page.$$eval("#session-events tbody tr td:nth-child(2)", (t) => t.map((x) => x.textContent)), v.names);
  assert.deepEqual(await page.$$eval("#session-events tbody tr:first-child dl.kv", (d) => d.map((x) => [...x.children].map((c) => c.textContent))),
    [["price", "40"]], "properties as key and value");
  const facts = Object.fromEntries(await page.$$eval("#session-facts dt", (dts) => dts.map((dt) => [dt.textContent, dt.nextElementSibling.textContent])));
  assert.match(facts.browser, /^Firefox/);
  assert.equal(facts.length, "1.5 min");
  assert.equal(facts["entry page"], "/p");
  assert.doesNotMatch(await page.evaluate(() => document.querySelector("main").innerText), /null|undefined|\d{4}-\d\d-\d\dT\d\d/);
  await screenshot(page, "dashboard-session");
  await page.click("#session-user");
  await page.waitForSelector("#user-id");
  assert.equal(await text(page, "#user-id"), v.anon);
  assert.deepEqual(errors, []);
  await context.close();
});

test("every view at 1280 and 390 px wide, light and dark: no page wider than the screen", async () => {
  const v = visitors[3];
  const views = [
    ["overview", "#overview?last=7d", "#visitors"],
    ["insights", "#insights?metric=users&last=7d&by=browser&split=name", "#table tbody tr"],
    ["users", "#users", "#users tbody tr"],
    ["user", `#user/${v.anon}`, "#timeline .session"],
    ["sessions", "#sessions?split=browser", "#split tbody tr"],
    ["session", `#session/${v.session}`, "#session-events tbody tr"],
    ["funnel", "#funnel?step=$pageview&step=add_to_cart&step=purchase&last=7d", "#funnel tbody tr"],
    ["paths", "#paths?last=7d", "#paths tbody tr"],
  ];
  for (const colorScheme of ["light", "dark"]) {
    for (const width of [1280, 390]) {
      const context = await browser.newContext({ viewport: { width, height: 844 }, colorScheme });
      const page = await context.newPage();
      const errors = [];
      page.on("pageerror", (e) => errors.push(e));
      await page.goto(`${collector.url}/`);
      await page.fill("input[name=token]", TOKEN);
      await page.click("button[type=submit]");
      await page.waitForSelector("#total");
      const background = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
      const [r, g, b] = background.match(/\d+/g).map(Number);
      assert.equal(r + g + b < 200, colorScheme === "dark", `a ${colorScheme} background: ${background}`);
      for (const [name, hash, ready] of views) {
        await page.goto(`${collector.url}/${hash}`);
        await page.waitForSelector(ready);
        await page.waitForTimeout(100); // the chart draws on the next frame
        const wide = await page.evaluate(() => document.documentElement.scrollWidth);
        assert.ok(wide <= width, `${name} at ${width} px (${colorScheme}) is ${wide} px wide`);
        if (name === "overview" || name === "insights" || name === "session" || width === 390) {
          await screenshot(page, `dashboard-${name}-${width}-${colorScheme}`);
        }
      }
      assert.deepEqual(errors, []);
      await context.close();
    }
  }
});

test("a saved report reopens from its shared link, without the token; CSV downloads", async () => {
  const { context, page } = await signedIn();
  await page.selectOption("select[name=metric]", "events");
  await page.waitForFunction(() => new URLSearchParams(location.hash.split("?")[1]).get("metric") === "events");
  await page.waitForSelector("#total");
  const total = await text(page, "#total");

  const [download] = await Promise.all([page.waitForEvent("download"), page.click("#csv")]);
  const csv = readFileSync(await download.path(), "utf8");
  assert.equal(csv.split("\r\n")[0], "key,value");
  const sum = csv.trim().split("\r\n").slice(1).reduce((a, l) => a + Number(l.split(",")[1]), 0);
  assert.equal(String(sum), total, "the CSV adds up to the total");

  await page.fill("input[name=report-name]", "All events this week");
  await page.check("input[name=report-shared]");
  await page.selectOption("select[name=report-expiry]", "7");
  await page.click("text=Save report");
  const link = await page.getAttribute("#report-link", "href");
  assert.match(link, /#shared\//);

  const stranger = await browser.newContext();
  const other = await stranger.newPage();
  await other.goto(link);
  await other.waitForSelector("#report-name");
  assert.equal(await text(other, "#report-name"), "All events this week");
  assert.equal(await text(other, "#total"), total);
  assert.doesNotMatch(await other.evaluate(() => document.querySelector("main").innerText), /null/);
  await screenshot(other, "dashboard-shared-report");
  await stranger.close();

  await page.click('header a[href="#reports"]');
  await page.waitForSelector("#reports tr");
  assert.equal(await text(page, "#reports tr td a"), "All events this week");
  // Who saved and shared it, and when the link ends: a week from now, in the viewer's words.
  const row = page.locator("#reports tbody tr", { hasText: "All events this week" });
  assert.match(await row.locator("td.saved").innerText(), / by admin$/);
  const linkInfo = await row.locator("td.link").innerText();
  assert.match(linkInfo, /made .+ by admin; expires /);
  const listed = await (await fetch(`${collector.url}/api/v1/reports`, { headers: { authorization: `Bearer ${TOKEN}` } })).json();
  const saved = listed.reports.find((r) => r.name === "All events this week");
  const days = (Date.parse(saved.share_expires_at) - Date.parse(saved.shared_at)) / 86_400_000;
  assert.ok(Math.abs(days - 7) < 0.01, `expires 7 days after it was shared, not ${days}`);
  await context.close();
});

// ---- The README's picture ----

const WEEK_AGENTS = {
  ...AGENTS,
  Safari: "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
  Edge: "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 Edg/120.0.0.0",
};

/**
 * A week of a small shop on `target`: visitors per day (oldest first), half on Chrome, a quarter
 * on Safari, the rest on Firefox and Edge; each views a page or two, some add to the cart, a few
 * buy. Answers the number of visitors per browser.
 */
async function seedWeek(target) {
  const perDay = [21, 38, 44, 41, 52, 47, 33, 29]; // from 7 days ago (its last hours) to today
  const now = Date.now();
  const counts = {};
  let n = 0;
  for (const [i, visitors] of perDay.entries()) {
    const daysAgo = perDay.length - 1 - i;
    const byBrowser = {};
    for (let v = 0; v < visitors; v++) {
      const r = (v * 7 + i * 3) % 20;
      const browserName = r < 10 ? "Chrome" : r < 15 ? "Safari" : r < 18 ? "Firefox" : "Edge";
      const id = String(++n).padStart(12, "0");
      // 1 to 9 hours before now, that many days ago (after, 7 days ago: inside `last=7d`).
      const start = now - daysAgo * 86400e3 + (daysAgo === 7 ? 1 : -1) * ((v % 9) + 1) * 3600e3;
      const names = ["$pageview", ...(v % 2 ? ["$pageview", "add_to_cart"] : []), ...(v % 6 === 1 ? ["purchase"] : []), "$pageleave"];
      const events = names.map((name, k) => ({
        event_id: `019ab0b5-0000-7000-8000-${id.slice(4)}${String(k).padStart(4, "0")}`,
        type: name === "$pageview" ? "page" : "track",
        name,
        timestamp: new Date(start + k * 40e3).toISOString(),
        anonymous_id: `5e1f0c2a-1b6d-4c7e-8f90-${id}`,
        user_id: null,
        session_id: `019ab0b5-8a20-7000-8000-${id}`,
        seq: k + 1,
        page: k === 1
          ? { url: "https://shop.example/product/1", path: "/product/1", title: "Product", referrer: "https://shop.example/" }
          : { url: `https://shop.example/${v % 4 === 0 ? "?utm_source=newsletter&utm_campaign=autumn" : ""}`, path: "/", title: "Shop",
            referrer: v % 3 === 1 ? "https://www.google.com/" : v % 5 === 2 ? "https://news.ycombinator.com/" : "" },
        props: {},
      }));
      (byBrowser[browserName] ??= []).push(...events);
      counts[browserName] = (counts[browserName] ?? 0) + 1;
    }
    for (const [browserName, events] of Object.entries(byBrowser)) {
      const res = await fetch(`${target.url}/v1/batch`, {
        method: "POST",
        headers: { "content-type": "text/plain", "user-agent": WEEK_AGENTS[browserName] },
        body: JSON.stringify({ key: "demo", sent_at: new Date(now).toISOString(), events }),
      });
      assert.equal((await res.json()).accepted, events.length);
    }
  }
  return counts;
}

test("overview: a week of visitors by browser, the README's screenshot (tests/artifacts/dashboard-overview.png)",
  async (t) => {
    const week = await startCollector(["--rate-limit", "0"]);
    t.after(() => week.stop());
    const counts = await seedWeek(week);
    const total = Object.values(counts).reduce((a, b) => a + b, 0);
    const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
    t.after(() => context.close());
    const page = await context.newPage();
    await page.goto(`${week.url}/#insights?metric=users&last=7d&interval=day&by=browser`);
    await page.fill("input[name=token]", TOKEN);
    await page.click("button[type=submit]");
    await page.waitForSelector(".chart canvas");
    assert.equal(await text(page, "#total"), String(total), "every visitor of the week");
    const rows = await page.$$eval("#table tbody tr", (trs) => trs.map((tr) => [...tr.children].map((td) => td.textContent)));
    const expected = Object.entries(counts).sort((a, b) => b[1] - a[1]).map(([k, v]) => [k, String(v)]);
    assert.deepEqual(rows, expected, "one row per browser, largest first");
    await screenshot(page, "dashboard-week-insights");

    // The Overview page of that week: the README's picture.
    await page.goto(`${week.url}/#overview?last=7d`);
    await page.waitForSelector("#visitors");
    await page.waitForSelector(".chart canvas");
    assert.equal(await text(page, "#visitors"), String(total));
    const browsers = await page.$$eval("#browsers tbody tr", (trs) => trs.map((tr) => [...tr.children].map((td) => td.textContent)));
    assert.deepEqual(browsers, expected, "the Browsers list, largest first");
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, "dashboard-overview.png"), fullPage: true });
  });

test("funnels, retention and paths: the numbers the visits imply, controls, and errors in place", async () => {
  const { context, page, errors } = await signedIn();
  // Funnel: 12 viewed the page, 10 added to the cart (two bounced), 3 bought (visitors 3, 6, 9).
  await page.goto(`${collector.url}/#funnel?step=$pageview&step=add_to_cart&step=purchase&last=7d`);
  await page.waitForSelector("#funnel tbody tr");
  const counts = () => page.$$eval("#funnel tbody tr td:nth-child(3)", (t) => t.map((x) => x.textContent));
  assert.deepEqual(await counts(), ["12", "10", "3"]);
  assert.deepEqual(await page.$$eval("#funnel tbody tr td:nth-child(4)", (t) => t.map((x) => x.textContent)),
    ["100.0 %", "83.3 %", "25.0 %"]);
  // Broken down by browser: 6 Chrome and 6 Firefox visitors start; Firefox buys twice (3, 9).
  await page.selectOption("select[name=by]", "browser");
  await page.waitForSelector("#breakdown tbody tr");
  const byBrowser = await page.$$eval("#breakdown tbody tr", (r) => r.map((x) => [...x.cells].map((c) => c.textContent)));
  assert.deepEqual(byBrowser.map((r) => r.slice(0, 4)).sort(), [["Chrome", "6", "5", "1"], ["Firefox", "6", "5", "2"]]);
  await screenshot(page, "dashboard-funnel");
  await page.goto(`${collector.url}/#funnel?step=$pageview&step=add_to_cart&step=purchase&last=7d`);
  await page.waitForSelector("#funnel tbody tr");
  // Who stopped after adding to the cart: the 7 who did not buy, in the users view.
  await page.click("#funnel tbody tr:nth-child(2) a.dropped");
  await page.waitForSelector("#users tbody tr");
  assert.equal(await page.$$eval("#users tbody tr", (r) => r.length), 7);
  assert.equal(new URLSearchParams(page.url().split("?")[1]).get("dropped_after"), "2");
  await page.goBack();
  await page.waitForSelector("#funnel tbody tr");
  // A step chosen from the picker: purchase → $pageleave instead of add_to_cart.
  await page.selectOption("select[name=step] >> nth=1", "$pageleave");
  await page.waitForFunction(() => document.querySelectorAll("#funnel tbody tr td:nth-child(3)")[1]?.textContent === "12");
  await page.click("#add-step");
  await page.waitForFunction(() => document.querySelectorAll("#funnel tbody tr").length === 4);
  // A bad window: the error shows under the controls, which stay usable.
  await page.goto(`${collector.url}/#funnel?step=$pageview&step=purchase&window=soon&last=7d`);
  await page.waitForSelector("#error");
  assert.match(await text(page, "#error"), /window/);
  await page.selectOption("select[name=window]", "1d");
  await page.waitForSelector("#funnel tbody tr");
  assert.deepEqual(await counts(), ["12", "3"]);

  // Retention: every visitor is in one daily cohort; nobody came back on a later day.
  await page.goto(`${collector.url}/#retention?last=7d`);
  await page.waitForSelector("#retention tbody tr");
  const sizes = await page.$$eval("#retention tbody tr td:nth-child(2)", (t) => t.map((x) => Number(x.textContent)));
  assert.equal(sizes.reduce((a, b) => a + b, 0), 12);
  await screenshot(page, "dashboard-retention");

  // Paths: after the page view, every event in order; the flow chart draws the first step.
  await page.goto(`${collector.url}/#paths?type=events&start=$pageview&depth=3&last=7d`);
  await page.waitForSelector("#paths tbody tr");
  const rows = await page.$$eval("#paths tbody tr", (r) => r.map((x) => [x.cells[0].textContent, Number(x.cells[1].textContent)]));
  const row = (steps) => rows.find(([p]) => p === steps.join(" → "))?.[1];
  assert.equal(row(["/p", "add_to_cart", "purchase", "$pageleave"]), 3);
  assert.equal(row(["/p", "add_to_cart", "$pageleave", "(end)"]), 7);
  assert.equal(row(["/p", "$pageleave", "(end)"]), 2);
  assert.ok(await page.$$eval("#flow .node", (n) => n.length) >= 5);
  await screenshot(page, "dashboard-paths");

  // Struggling users: ordered by sessions in the range, then the shortest average first; the
  // two who bounced (30 s from page view to leaving) lead.
  await page.goto(`${collector.url}/#users?last=7d`);
  await page.waitForSelector("#users tbody tr");
  await page.selectOption("select[name=sort]", "struggling");
  await page.waitForFunction(() => [...document.querySelectorAll("#users thead th")].some((t) => t.textContent === "Average session"));
  const firstTwo = await page.$$eval("#users tbody tr", (r) => r.slice(0, 3).map((x) => [x.cells[0].textContent, x.cells[6].textContent]));
  const bounced = visitors.slice(0, 2).map((v) => v.anon).sort();
  assert.deepEqual(firstTwo.slice(0, 2).map((r) => r[0]).sort(), bounced);
  assert.deepEqual(firstTwo.map((r) => r[1]), ["30.0 s", "30.0 s", "1.0 min"]);
  assert.deepEqual(errors, []);
  await context.close();
});

test("API tokens: created and shown once, a read token signs in, revoked at once (#19)", async () => {
  const { context, page, errors } = await signedIn();
  await page.click('header a[href="#tokens"]');
  await page.fill("input[name=name]", "grafana");
  await page.fill("input[name=sites]", "demo");
  await page.click("text=Create token");
  await page.waitForSelector("#new-token code");
  const secret = await text(page, "#new-token code");
  assert.match(secret, /^ff_[0-9a-f]{64}$/);
  assert.equal(await text(page, "#tokens tbody tr td"), "grafana");
  await screenshot(page, "dashboard-tokens");

  const reader = await browser.newContext();
  const readerPage = await reader.newPage();
  await readerPage.goto(`${collector.url}/`);
  await readerPage.fill("input[name=token]", secret);
  await readerPage.click("button[type=submit]");
  await readerPage.waitForSelector("#total");

  await page.click("#tokens button");
  await page.waitForSelector("text=No API tokens yet.");
  await readerPage.reload();
  await readerPage.waitForSelector(".error");
  assert.match(await text(readerPage, ".error"), /refused/);
  assert.deepEqual(errors, []);
  await reader.close();
  await context.close();
});

test("a shared report's public page shows no person's ID or email (#19)", async () => {
  const now = Date.now();
  const identify = await fetch(`${collector.url}/v1/batch`, {
    method: "POST",
    headers: { "content-type": "text/plain", "user-agent": AGENTS.Chrome },
    body: JSON.stringify({ key: "demo", events: [{
      event_id: "019ab0b4-0000-7000-8000-0000000ee001", type: "identify", name: "$identify",
      timestamp: new Date(now - 60e3).toISOString(), anonymous_id: "3f0c2a1e-5b6d-4c7e-8f90-eeeeeeeeeeee",
      user_id: "ann@shop.example", session_id: "019ab0b4-8a20-7000-8000-eeeeeeeeeeee", seq: 1,
      page: { url: "http://shop.example/p", path: "/p", title: "P", referrer: "" }, props: {},
      traits: { email: "ann@shop.example" },
    }] }),
  });
  assert.equal((await identify.json()).accepted, 1);
  const saved = await fetch(`${collector.url}/api/v1/reports`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${TOKEN}` },
    body: JSON.stringify({ name: "Users this week", view: "insights", query: "metric=users&last=7d", shared: true }),
  });
  const report = await saved.json();
  const admin = await fetch(`${collector.url}/api/v1/reports/${report.id}`, { headers: { authorization: `Bearer ${TOKEN}` } });
  assert.ok(JSON.stringify(await admin.json()).includes("ann@shop.example"), "the admin's answer has the sample user");

  const stranger = await browser.newContext();
  const page = await stranger.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e));
  await page.goto(`${collector.url}${report.share_url}`);
  await page.waitForSelector("#total");
  const shown = await page.textContent("body");
  assert.ok(!shown.includes("ann@shop.example") && !shown.includes("Meet your users"), shown);
  assert.equal(await page.locator('a[href^="#user/"]').count(), 0);
  assert.deepEqual(errors, []);
  await screenshot(page, "dashboard-shared-no-people");
  await stranger.close();
});

test("a saved report is renamed and its link withdrawn from the reports page (#19)", async () => {
  await fetch(`${collector.url}/api/v1/reports`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${TOKEN}` },
    body: JSON.stringify({ name: "To rename", view: "sessions", query: "last=7d", shared: true }),
  });
  const { context, page, errors } = await signedIn();
  await page.click('header a[href="#reports"]');
  const row = page.locator("#reports tr", { hasText: "To rename" });
  const link = await row.locator('a[href*="#shared/"]').getAttribute("href");
  await row.locator("button.rename").click();
  await page.fill("input[name=rename]", "Users, renamed");
  await page.click("#reports form button[type=submit]");
  await page.waitForSelector("#reports tr >> text=Users, renamed");
  const renamed = page.locator("#reports tr", { hasText: "Users, renamed" });
  await renamed.locator("button.share").click();
  await page.waitForFunction(() => [...document.querySelectorAll("#reports tr")]
    .some((tr) => tr.textContent.includes("Users, renamed") && tr.textContent.includes("private")));
  const token = link.split("#shared/")[1];
  assert.equal((await fetch(`${collector.url}/api/v1/shared/${token}`)).status, 404);

  // A link past its expiry tells its visitor so, and the owner can lift the expiry.
  const soon = await (await fetch(`${collector.url}/api/v1/reports`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${TOKEN}` },
    body: JSON.stringify({ name: "Short-lived", view: "sessions", query: "last=7d", shared: true, share_expires_at: new Date(Date.now() + 1000).toISOString() }),
  })).json();
  await new Promise((r) => setTimeout(r, 1200));
  const stranger = await browser.newContext();
  const visitor = await stranger.newPage();
  await visitor.goto(`${collector.url}${soon.share_url}`);
  await visitor.waitForSelector("#expired");
  await page.reload();
  const short = page.locator("#reports tbody tr", { hasText: "Short-lived" });
  await short.locator("select[name=share-expiry]").selectOption("");
  await page.waitForFunction(() => [...document.querySelectorAll("#reports tr")]
    .some((tr) => tr.textContent.includes("Short-lived") && tr.textContent.includes("never expires")));
  await visitor.reload();
  await visitor.waitForSelector("#report-name");
  await stranger.close();
  assert.deepEqual(errors, []);
  await context.close();
});

// The host's page room (js-wrapper/src/host/page.js) alone in Chromium: the page line (URL,
// path, title, referrer read once), the context line (screen, viewport again after `resize`,
// language, time zone), the facts, and `listen`: the page's events reaching `_on`, and the
// History API wrapper that keeps what pushState/replaceState return and throw.
// Run: node --test tests/e2e/host-page.test.mjs
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { launchChromium } from "./harness.mjs";
import { openRoom, roomHtml } from "./rooms.mjs";

const ORIGIN = "https://shop.footfall.test";
let browser;
before(async () => {
  browser = await launchChromium();
});
after(async () => {
  await browser?.close();
});

test("page(): URL, path, title, and the referrer of the load, one a line", async () => {
  const context = await browser.newContext();
  const page = await openRoom(context, `${ORIGIN}/from`, ["page"], { body: '<a id="go" href="/shop/room?x=1#top">go</a>' });
  // Followed from there: a page of the site with the room.
  const html = roomHtml(["page"]);
  await context.route(`${ORIGIN}/shop/room?x=1`, (route) => route.fulfill({ status: 200, contentType: "text/html", body: html }));
  await Promise.all([page.waitForURL(`${ORIGIN}/shop/room?x=1#top`), page.click("#go")]);
  const first = await page.evaluate(() => {
    window.room = footfallPage(call);
    return room.page();
  });
  assert.equal(first, `${ORIGIN}/shop/room?x=1#top\n/shop/room\nRoom\n${ORIGIN}/from`);
  const later = await page.evaluate(() => {
    history.pushState(null, "", "/cart");
    document.title = "Cart";
    return room.page();
  });
  assert.equal(later, `${ORIGIN}/cart\n/cart\nCart\n${ORIGIN}/from`, "a new path and title; the referrer of the load");
  await context.close();
});

test("context(): screen, viewport (read again after resize), language, time zone; facts(); t0()", async () => {
  const context = await browser.newContext({ locale: "de-DE", timezoneId: "Europe/Berlin", viewport: { width: 800, height: 600 } });
  const page = await openRoom(context, `${ORIGIN}/`, ["page"]);
  const first = await page.evaluate(() => {
    window.room = footfallPage(call);
    return { line: room.context(), screen: `${screen.width}x${screen.height}` };
  });
  assert.equal(first.line, `${first.screen}\n800x600\nde-DE\nEurope/Berlin`);
  // Without the page's listeners the viewport is the one read first.
  await page.setViewportSize({ width: 640, height: 480 });
  assert.equal((await page.evaluate(() => room.context())).split("\n")[1], "800x600");
  await page.evaluate(() => room.listen(false));
  await page.setViewportSize({ width: 500, height: 400 });
  await page.waitForFunction(() => innerWidth === 500);
  assert.equal((await page.evaluate(() => room.context())).split("\n")[1], "500x400");

  const facts = await page.evaluate(() => [room.facts(), room.t0() === performance.timeOrigin]);
  assert.deepEqual(facts, [1, true], "online, visible, no Do Not Track");
  await context.setOffline(true);
  assert.equal(await page.evaluate(() => room.facts() & 1), 0, "offline");
  await context.setOffline(false);
  await context.close();
});

test("listen(true): the page's events reach _on as numbers", async () => {
  const context = await browser.newContext();
  const page = await openRoom(context, `${ORIGIN}/`, ["page"], { body: '<div style="height:5000px">tall</div>' });
  await page.evaluate(() => footfallPage(call).listen(true));
  const events = async () => (await page.evaluate(() => calls.splice(0))).map((c) => { assert.equal(c[0], "_on"); return [c[1], c[2]]; });
  await page.evaluate(() => document.dispatchEvent(new Event("visibilitychange")));
  assert.deepEqual(await events(), [[0, 0]], "visibilitychange");
  await context.setOffline(true);
  await context.setOffline(false);
  await page.waitForFunction(() => calls.length > 0);
  assert.deepEqual(await events(), [[1, 0]], "online");
  await page.evaluate(() => {
    dispatchEvent(new PageTransitionEvent("pagehide", { persisted: true }));
    dispatchEvent(new PageTransitionEvent("pageshow", { persisted: false }));
  });
  assert.deepEqual(await events(), [[2, 1], [3, 0]], "pagehide persisted, pageshow");
  await page.mouse.click(10, 10);
  await page.keyboard.press("a");
  await page.waitForFunction(() => calls.length >= 2);
  const input = (await events()).filter((e) => e[0] === 4);
  assert.ok(input.length >= 2, `pointerdown and keydown: ${JSON.stringify(input)}`);
  await page.mouse.wheel(0, 400);
  await page.waitForFunction(() => calls.length > 0);
  assert.ok((await events()).every((e) => e[0] === 4), "scroll");
  await page.evaluate(() => {
    history.pushState({ n: 1 }, "", "/a");
    history.replaceState({ n: 2 }, "", "/b");
  });
  assert.deepEqual(await events(), [[5, 0], [6, 0]], "pushState, replaceState");
  await page.evaluate(() => history.back());
  await page.waitForFunction(() => calls.length > 0);
  assert.deepEqual(await events(), [[5, 0]], "popstate");
  await context.close();
});

test("the History API wrapper keeps what the page's pushState/replaceState return and throw", async () => {
  const context = await browser.newContext();
  const page = await openRoom(context, `${ORIGIN}/`, ["page"]);
  const got = await page.evaluate(() => {
    // A router's own wrappers, installed before the SDK: they answer something.
    const push = history.pushState;
    const replace = history.replaceState;
    history.pushState = function (s, t, u) {
      push.call(history, s, t, u);
      return "pushed " + u;
    };
    history.replaceState = function (s, t, u) {
      replace.call(history, s, t, u);
      return "replaced " + u;
    };
    footfallPage(call).listen(true);
    const out = [history.pushState(null, "", "/a"), history.replaceState(null, "", "/b"), location.pathname];
    let thrown = null;
    try {
      history.pushState(null, "", "https://elsewhere.example/");
    } catch (e) {
      thrown = e.name;
    }
    out.push(thrown, location.pathname, calls.map((c) => c[1]));
    return out;
  });
  assert.deepEqual(got, ["pushed /a", "replaced /b", "/b", "SecurityError", "/b", [5, 6]], "the throw reaches the page, the SDK hears nothing of it");
  const untouched = await page.evaluate(() => {
    const push = history.pushState;
    footfallPage(call).listen(false);
    return history.pushState === push;
  });
  assert.equal(untouched, true, "listen(false) leaves the History API alone");
  await context.close();
});

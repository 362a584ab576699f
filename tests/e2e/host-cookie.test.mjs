// The host's cookie room (js-wrapper/src/host/cookie.js) alone in Chromium: the widest domain
// where a cookie reads back, Max-Age of 365 days, SameSite=Lax and Secure on https, one read
// and one write of `document.cookie` per task, values that do not decode.
// Run: node --test tests/e2e/host-cookie.test.mjs
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { launchChromium } from "./harness.mjs";
import { openRoom } from "./rooms.mjs";

const YEAR = 365 * 24 * 3600;
let browser;
before(async () => {
  browser = await launchChromium();
});
after(async () => {
  await browser?.close();
});

/** The cookies of `context` by name. */
async function jarOf(context) {
  return Object.fromEntries((await context.cookies()).map((c) => [c.name, c]));
}

test("http: set on the widest domain that reads back, 365 days, SameSite=Lax, not Secure; the probe leaves nothing", async () => {
  const context = await browser.newContext();
  const page = await openRoom(context, "http://a.shop.footfall.test/p", ["cookie"]);
  const inTask = await page.evaluate(() => {
    const jar = footfallCookies().jar("");
    jar.setItem("ff_id", "a b/ü;=");
    // Written at the end of the task: the jar answers what it holds, the page has none yet.
    return { value: jar.getItem("ff_id"), cookie: document.cookie };
  });
  assert.equal(inTask.value, "a b/ü;=");
  assert.equal(inTask.cookie, "");
  const before = Date.now() / 1000;
  const c = await jarOf(context);
  assert.deepEqual(Object.keys(c), ["ff_id"], "no probe cookie is left");
  assert.equal(c.ff_id.domain, ".footfall.test", "the widest domain (never the bare suffix)");
  assert.equal(c.ff_id.path, "/");
  assert.equal(c.ff_id.value, encodeURIComponent("a b/ü;="));
  assert.equal(c.ff_id.sameSite, "Lax");
  assert.equal(c.ff_id.secure, false);
  assert.ok(Math.abs(c.ff_id.expires - (before + YEAR)) < 120, `Max-Age 365 days: ${c.ff_id.expires}`);
  // Read back by a jar of a later task, and deleted (Max-Age=0).
  assert.equal(await page.evaluate(() => footfallCookies().jar("").getItem("ff_id")), "a b/ü;=");
  await page.evaluate(() => footfallCookies().jar("").removeItem("ff_id"));
  assert.deepEqual(await jarOf(context), {});
  await context.close();
});

test("https: Secure and SameSite=Lax; a given domain is used as it is; an IP address gets a host-only cookie", async () => {
  const context = await browser.newContext();
  const page = await openRoom(context, "https://shop.footfall.test/", ["cookie"]);
  await page.evaluate(() => {
    footfallCookies().jar("auto").setItem("ff_a", "1");
    footfallCookies().jar("shop.footfall.test").setItem("ff_b", "2");
  });
  const c = await jarOf(context);
  assert.equal(c.ff_a.domain, ".footfall.test");
  assert.equal(c.ff_a.secure, true);
  assert.equal(c.ff_a.sameSite, "Lax");
  assert.equal(c.ff_b.domain, ".shop.footfall.test");
  assert.equal(c.ff_b.secure, true);

  const ip = await openRoom(context, "http://127.0.0.1/", ["cookie"]);
  await ip.evaluate(() => footfallCookies().jar("").setItem("ff_c", "3"));
  const atIp = (await context.cookies("http://127.0.0.1/")).find((k) => k.name === "ff_c");
  assert.equal(atIp?.domain, "127.0.0.1", "host-only: no Domain attribute");
  await context.close();
});

test("one read and one write of document.cookie per task, whatever the jar is asked", async () => {
  const context = await browser.newContext();
  const page = await openRoom(context, "http://shop.footfall.test/", ["cookie"]);
  await page.evaluate(() => {
    document.cookie = "ff_a=1; Path=/; Domain=shop.footfall.test";
    // Counts the page's reads and writes of the real document.cookie (and still does them).
    const real = Object.getOwnPropertyDescriptor(Document.prototype, "cookie");
    window.counts = { reads: 0, writes: 0 };
    Object.defineProperty(document, "cookie", {
      configurable: true,
      get() {
        counts.reads++;
        return real.get.call(document);
      },
      set(v) {
        counts.writes++;
        real.set.call(document, v);
      },
    });
    window.jar = footfallCookies().jar("shop.footfall.test");
  });
  const inTask = await page.evaluate(() => {
    const seen = [jar.getItem("ff_a"), jar.getItem("ff_b")];
    jar.setItem("ff_b", "2");
    jar.setItem("ff_c", "3");
    jar.setItem("ff_c", "4");
    jar.removeItem("ff_a");
    seen.push(jar.getItem("ff_a"), jar.getItem("ff_b"), jar.getItem("ff_c"));
    return { seen, counts: { ...counts } };
  });
  assert.deepEqual(inTask.seen, ["1", undefined, undefined, "2", "4"]);
  assert.deepEqual(inTask.counts, { reads: 1, writes: 0 }, "one read in the task, no write yet");
  // In the same task as more work, after the microtasks queued before it.
  const after = await page.evaluate(async () => {
    jar.setItem("ff_d", "5");
    await new Promise((r) => queueMicrotask(r));
    return { counts: { ...counts }, cookie: document.cookie };
  });
  assert.equal(after.counts.writes, 4, "one write per cookie, at the end of each task");
  assert.deepEqual(after.cookie.split("; ").sort(), ["ff_b=2", "ff_c=4", "ff_d=5"]);
  await context.close();
});

test("a value that does not decode reads as \"\", a missing one as undefined, names match whole", async () => {
  const context = await browser.newContext();
  const page = await openRoom(context, "http://shop.footfall.test/", ["cookie"]);
  const got = await page.evaluate(() => {
    document.cookie = "ff_bad=%E0%A4%A; Path=/";
    document.cookie = "xff_id=1; Path=/";
    document.cookie = "ff_id2=2; Path=/";
    const jar = footfallCookies().jar("shop.footfall.test");
    return [jar.getItem("ff_bad"), jar.getItem("ff_id"), jar.getItem("ff_id2")];
  });
  assert.deepEqual(got, ["", undefined, "2"]);
  await context.close();
});

test("probe: true where a cookie with those attributes reads back, false where it cannot", async () => {
  const context = await browser.newContext();
  const page = await openRoom(context, "http://a.shop.footfall.test/", ["cookie"]);
  const got = await page.evaluate(() => {
    const c = footfallCookies();
    return [c.probe("; SameSite=Lax"), c.probe("; Domain=footfall.test; SameSite=Lax"), c.probe("; Domain=other.example; SameSite=Lax"), c.probe("; SameSite=Lax; Secure")];
  });
  // Chromium takes Secure cookies from http pages of localhost only.
  assert.deepEqual(got, [true, true, false, false]);
  assert.deepEqual(await jarOf(context), {});
  await context.close();
});

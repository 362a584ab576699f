// The host's storage room (js-wrapper/src/host/storage.js, with the cookie room it opens
// cookies from) in Chromium: the stores behind numeric handles, the fall-back when the browser
// refuses a storage (a sandboxed page, whose cookies and storages throw), memory that keeps
// only the opt-out in localStorage, and `keys(prefix)`.
// Run: node --test tests/e2e/host-storage.test.mjs
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { launchChromium } from "./harness.mjs";
import { openRoom } from "./rooms.mjs";

const URL_ = "http://shop.footfall.test/";
let browser;
before(async () => {
  browser = await launchChromium();
});
after(async () => {
  await browser?.close();
});

test("open 0 cookies, 1 and 4 localStorage, 3 and 5 sessionStorage: sget, sset and sdel reach them", async () => {
  const context = await browser.newContext();
  const page = await openRoom(context, URL_, ["cookie", "storage"]);
  const got = await page.evaluate(() => {
    const s = (window.rooms = footfallStorage(footfallCookies()));
    const h = [0, 1, 3, 4, 5].map((which) => s.open(which, ""));
    h.forEach((handle, i) => s.sset(handle, "ff_k" + i, "v" + i));
    const read = h.map((handle, i) => s.sget(handle, "ff_k" + i));
    return { h, read, local: { ...localStorage }, session: { ...sessionStorage }, cookieInTask: document.cookie };
  });
  assert.deepEqual(got.h, [0, 1, 2, 3, 4], "handles in order");
  assert.deepEqual(got.read, ["v0", "v1", "v2", "v3", "v4"]);
  assert.deepEqual(got.local, { ff_k1: "v1", ff_k3: "v3" });
  assert.deepEqual(got.session, { ff_k2: "v2", ff_k4: "v4" });
  assert.equal(got.cookieInTask, "", "the cookie is written at the end of the task");
  assert.equal(await page.evaluate(() => document.cookie), "ff_k0=v0");
  const afterDel = await page.evaluate(() => {
    [0, 1, 2, 3, 4].forEach((h, i) => rooms.sdel(h, "ff_k" + i));
    // A handle never opened: nothing, and no throw.
    return { missing: rooms.sget(9, "ff_k1"), set: rooms.sset(9, "a", "b"), local: localStorage.length, session: sessionStorage.length };
  });
  assert.deepEqual(afterDel, { missing: undefined, set: undefined, local: 0, session: 0 });
  assert.equal(await page.evaluate(() => document.cookie), "");
  await context.close();
});

test("a sandboxed page (cookies and storages throw): 0 to 3 fall back to memory, 4 and 5 open nothing", async () => {
  const context = await browser.newContext();
  const page = await openRoom(context, URL_, ["cookie", "storage"], {
    headers: { "content-security-policy": "sandbox allow-scripts" },
  });
  const got = await page.evaluate(() => {
    const refused = [];
    try {
      localStorage.length;
    } catch (e) {
      refused.push(e.name);
    }
    try {
      document.cookie;
    } catch (e) {
      refused.push(e.name);
    }
    const s = footfallStorage(footfallCookies());
    const h = [0, 1, 2, 3, 4, 5].map((which) => s.open(which, ""));
    s.sset(h[0], "ff_id", "x");
    s.sset(h[1], "ff_id", "y");
    return { refused, h, read: [s.sget(h[0], "ff_id"), s.sget(h[1], "ff_id"), s.sget(h[2], "ff_id")], keys: s.keys("") };
  });
  assert.deepEqual(got.refused, ["SecurityError", "SecurityError"], "the browser refuses this page its storage");
  assert.deepEqual(got.h, [0, 1, 2, 3, -1, -1]);
  assert.deepEqual(got.read, ["x", "y", undefined], "each memory store is its own");
  assert.equal(got.keys, "");
  await context.close();
});

test("memory (2) keeps nothing past the page but the opt-out, which it keeps in localStorage", async () => {
  const context = await browser.newContext();
  const page = await openRoom(context, URL_, ["cookie", "storage"]);
  const got = await page.evaluate(() => {
    const s = footfallStorage(footfallCookies());
    const h = s.open(2, "");
    s.sset(h, "ff_id", "x");
    s.sset(h, "ff_optout", "1");
    return { id: s.sget(h, "ff_id"), optout: s.sget(h, "ff_optout"), local: { ...localStorage }, cookie: document.cookie };
  });
  assert.deepEqual(got, { id: "x", optout: "1", local: { ff_optout: "1" }, cookie: "" });
  // A new page's memory store: the opt-out is still there, the ID is not.
  const next = await page.evaluate(() => {
    const s = footfallStorage(footfallCookies());
    const h = s.open(2, "");
    const seen = [s.sget(h, "ff_id"), s.sget(h, "ff_optout")];
    s.sdel(h, "ff_optout");
    return { seen, local: localStorage.length };
  });
  assert.deepEqual(next, { seen: [undefined, "1"], local: 0 });
  await context.close();
});

test("keys(prefix): the keys of localStorage that start with it, one a line", async () => {
  const context = await browser.newContext();
  const page = await openRoom(context, URL_, ["cookie", "storage"]);
  const got = await page.evaluate(() => {
    ["ff_o_1", "ff_o_2", "ff_other", "x_ff_o_3"].forEach((k) => localStorage.setItem(k, "1"));
    const s = footfallStorage(footfallCookies());
    return [s.keys("ff_o_"), s.keys("none"), s.keys("")];
  });
  assert.deepEqual(got[0].split("\n").sort(), ["ff_o_1", "ff_o_2"]);
  assert.equal(got[1], "");
  assert.equal(got[2].split("\n").length, 4);
  await context.close();
});

// The host's locks room (js-wrapper/src/host/locks.js) alone in Chromium, two tabs of one site:
// a free Web Lock is granted (`_locked(id, 1)`) and, with `hold`, held for the page's life; a
// held one is taken (`_locked(id, 0)`); without Web Locks (a page that is not a secure
// context) `lock` answers false.
// Run: node --test tests/e2e/host-locks.test.mjs
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { launchChromium, eventually } from "./harness.mjs";
import { openRoom } from "./rooms.mjs";

let browser;
before(async () => {
  browser = await launchChromium();
});
after(async () => {
  await browser?.close();
});

/** Asks for the lock `name` on `page`; answers what `lock` returned and the `_locked` call. */
async function lock(page, name, hold, id) {
  const returned = await page.evaluate(([n, h, i]) => footfallLocks(call).lock(n, h, i), [name, hold, id]);
  const answer = await eventually(() => page.evaluate((i) => calls.find((c) => c[1] === i) ?? null, id));
  return [returned, answer];
}

test("granted, held for the page's life, taken in another tab, granted again once the page is gone", async () => {
  const context = await browser.newContext();
  const url = "https://shop.footfall.test/";
  const first = await openRoom(context, url, ["locks"]);
  const second = await openRoom(context, url, ["locks"]);
  assert.deepEqual(await lock(first, "ff_send", true, 1), [true, ["_locked", 1, 1]], "granted");
  assert.deepEqual(await lock(second, "ff_send", false, 2), [true, ["_locked", 2, 0]], "held by the first tab: taken");
  assert.deepEqual(await lock(second, "ff_send", false, 3), [true, ["_locked", 3, 0]], "still held");
  await first.close();
  // The browser lets a closed page's locks go a little later: asked again until granted.
  let id = 3;
  await eventually(async () => (await lock(second, "ff_send", false, ++id))[1][2] === 1);
  // Without `hold`, it is let go once granted.
  assert.deepEqual(await lock(second, "ff_send", false, ++id), [true, ["_locked", id, 1]], "not held: granted again");
  await context.close();
});

test("no Web Locks (a page that is not a secure context): false, and no answer", async () => {
  const context = await browser.newContext();
  const page = await openRoom(context, "http://shop.footfall.test/", ["locks"]);
  const got = await page.evaluate(() => [isSecureContext, "locks" in navigator, footfallLocks(call).lock("ff_send", true, 1)]);
  assert.deepEqual(got, [false, false, false]);
  await page.evaluate(() => new Promise((r) => setTimeout(r, 100)));
  assert.deepEqual(await page.evaluate(() => calls), []);
  await context.close();
});

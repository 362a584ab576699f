// The host's locks room (js-wrapper/src/host/locks.js) alone in Chromium, two tabs of one site:
// a free Web Lock is granted (`_record(6, name, "")`) and, with `hold`, held for the page's life; a
// held one is taken (`_record(7, name, "")`); each request is answered once; without Web Locks (a page that is not a secure
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

/**
 * Asks for the lock `name` on `page`; answers what `lock` returned and the `_record` calls that
 * came for it (once one came, and a moment more for a second that must not come).
 */
async function lock(page, name, hold) {
  const [returned, before] = await page.evaluate(
    ([n, h]) => [footfallLocks(call).lock(n, h), calls.length], [name, hold]);
  await eventually(() => page.evaluate((b) => calls.length > b, before));
  await page.evaluate(() => new Promise((r) => setTimeout(r, 50)));
  return [returned, ...(await page.evaluate((b) => calls.slice(b), before))];
}

test("granted, held for the page's life, taken in another tab, granted again once the page is gone", async () => {
  const context = await browser.newContext();
  const url = "https://shop.footfall.test/";
  const first = await openRoom(context, url, ["locks"]);
  const second = await openRoom(context, url, ["locks"]);
  assert.deepEqual(await lock(first, "ff_send", true), [true, ["_record", 6, "ff_send", ""]], "granted");
  assert.deepEqual(await lock(second, "ff_send", false), [true, ["_record", 7, "ff_send", ""]], "held by the first tab: taken");
  assert.deepEqual(await lock(second, "ff_outbox_b", false), [true, ["_record", 6, "ff_outbox_b", ""]], "another name: granted");
  assert.deepEqual(await lock(second, "ff_send", false), [true, ["_record", 7, "ff_send", ""]], "still held");
  await first.close();
  // The browser lets a closed page's locks go a little later: asked again until granted.
  await eventually(async () => (await lock(second, "ff_send", false))[1][1] === 6);
  // Without `hold`, it is let go once granted.
  assert.deepEqual(await lock(second, "ff_send", false), [true, ["_record", 6, "ff_send", ""]], "not held: granted again");
  await context.close();
});

test("no Web Locks (a page that is not a secure context): false, and no answer", async () => {
  const context = await browser.newContext();
  const page = await openRoom(context, "http://shop.footfall.test/", ["locks"]);
  const got = await page.evaluate(() => [isSecureContext, "locks" in navigator, footfallLocks(call).lock("ff_send", true)]);
  assert.deepEqual(got, [false, false, false]);
  await page.evaluate(() => new Promise((r) => setTimeout(r, 100)));
  assert.deepEqual(await page.evaluate(() => calls), []);
  await context.close();
});

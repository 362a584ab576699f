// The host's tasks room (js-wrapper/src/host/tasks.js) alone in Chromium: random words, work
// at the end of the task (`later`) and after a timer (`timer`) reaching `_on(7, what)`, and
// `flush()`'s Promises, resolved when the wasm says so (`flushed`) or at once when it has
// nothing to send (`_on(26, 0)`, the wasm's flush, false).
// Run: node --test tests/e2e/host-tasks.test.mjs
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { launchChromium } from "./harness.mjs";
import { openRoom } from "./rooms.mjs";

let browser, context, page;
before(async () => {
  browser = await launchChromium();
  context = await browser.newContext();
  page = await openRoom(context, "https://shop.footfall.test/", ["tasks"]);
  await page.evaluate(() => (window.tasks = footfallTasks(call)));
});
after(async () => {
  await browser?.close();
});

test("rnd: unsigned 32-bit words, not repeated; now: the clock", async () => {
  const got = await page.evaluate(() => ({ words: Array.from({ length: 200 }, () => tasks.rnd()), now: tasks.now(), real: Date.now() }));
  assert.ok(got.words.every((w) => Number.isInteger(w) && w >= 0 && w < 2 ** 32));
  assert.equal(new Set(got.words).size, 200);
  assert.ok(got.now <= got.real, "read from the same clock");
});

// The same instants as `formats_known_instants` in wire/src/time.rs.
test("iso: the wire format's timestamps, as the core writes them natively; nothing outside years 1970 to 9999", async () => {
  const got = await page.evaluate(() => [0, 1795428001004, 951782400000, 4102444799999, NaN, -5, 1e20].map((ms) => tasks.iso(ms)));
  assert.deepEqual(got, [
    "1970-01-01T00:00:00.000Z",
    "2026-11-23T10:00:01.004Z",
    "2000-02-29T00:00:00.000Z",
    "2099-12-31T23:59:59.999Z",
    "1970-01-01T00:00:00.000Z",
    "1970-01-01T00:00:00.000Z",
    "9999-12-31T23:59:59.999Z",
  ]);
});

test("later: at the end of the task, before a timer; timer: after one", async () => {
  const order = await page.evaluate(async () => {
    calls.length = 0;
    const order = [];
    tasks.timer(7, 0);
    tasks.later(3);
    order.push(calls.length);
    await new Promise((r) => setTimeout(r, 50));
    order.push(...calls.map((c) => [c[0], c[1], c[2]]));
    return order;
  });
  assert.deepEqual(order, [0, ["_on", 7, 3], ["_on", 7, 7]]);
});

test("flush: resolves when the wasm says the calls before it were answered, at once when it has nothing", async () => {
  const got = await page.evaluate(async () => {
    calls.length = 0;
    const done = [];
    answers._on = true;
    tasks.flush().then(() => done.push("a"));
    tasks.flush().then(() => done.push("b"));
    await new Promise((r) => setTimeout(r, 10));
    const before = done.slice();
    tasks.flushed(1);
    await new Promise((r) => setTimeout(r, 10));
    const one = done.slice();
    answers._on = false;
    await tasks.flush();
    return { before, one, all: done, calls: calls.map((c) => c.slice(0, 2)) };
  });
  assert.deepEqual(got.before, [], "not before the wasm says so");
  assert.deepEqual(got.one, ["a"], "flushed(1) resolves the oldest");
  assert.deepEqual(got.all, ["a", "b"], "nothing left to send: every flush still waiting resolves");
  assert.deepEqual(got.calls, [["_on", 26], ["_on", 26], ["_on", 26]], "`_on(26)` is the wasm's flush");
});

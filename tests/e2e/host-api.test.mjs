// The host's API room (js-wrapper/src/host/api.js) alone in Chromium, over a stub of the
// wasm's exports that records what crosses: the options as one list (in the order of `NAMES`
// in options.rs, "\u0001" for one not given or of a wrong type), names as trimmed strings,
// properties as JSON text with the registered ones merged in, warnings (through the host's
// `warn`) for what is not a plain object, and no throw into the page.
// Run: node --test tests/e2e/host-api.test.mjs
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { launchChromium } from "./harness.mjs";
import { openRoom } from "./rooms.mjs";

const NONE = "\u0001";
let browser, context, page;
before(async () => {
  browser = await launchChromium();
  context = await browser.newContext();
  page = await openRoom(context, "https://shop.footfall.test/", ["api"]);
  await page.evaluate(() => {
    // The wasm's exports the room calls, each recording its arguments.
    const sdk = {};
    for (const name of ["_record", "_on"]) {
      sdk[name] = (...args) => void calls.push([name, ...args]);
    }
    // `_on(23)` is `isOptedOut()`, the one that answers.
    const on = sdk._on;
    sdk._on = (event, x) => (on(event, x), event === 23 && answers.optedOut === true);
    // The host's `read(3)` is the registered properties, `read(0..2)` the anonymous, session
    // and user IDs.
    const read = (what) => (calls.push(["read", what]), (what === 3 ? answers.registered : answers.ids?.[what]) ?? "");
    const host = { warn: (m) => void calls.push(["warn", m]), read, flush: () => Promise.resolve("flushed") };
    window.api = footfallApi(sdk, host);
  });
});
after(async () => {
  await browser?.close();
});

const crossed = () => page.evaluate(() => calls.splice(0));

test("init: the options as one list; the endpoint defaults to the page's origin; registered properties read back", async () => {
  await page.evaluate(() => {
    answers.registered = '{"plan":"pro"}';
    api.init({ key: " demo ", sessionScope: "tab", sessionTimeout: 45.9, endSessionOnHidden: true, hiddenGrace: -3, autoPageviews: false, batchSize: "20", flushInterval: Infinity, persistence: 3, respectDnt: false });
  });
  const [init, registered] = await crossed();
  assert.deepEqual(init.slice(0, 3), ["_record", 8, ""]);
  assert.deepEqual(init[3].split("\n"), [
    " demo ", "https://shop.footfall.test", "tab", NONE, NONE, "45", NONE, "true", "-3", "false", NONE, "20", "Infinity", "false",
  ]);
  assert.deepEqual(registered, ["read", 3]);
  await page.evaluate(() => api.track("  buy ", { n: 1 }));
  assert.deepEqual(await crossed(), [["_record", 1, "buy", '{"plan":"pro","n":1}']], "registered merged, the call's own win");
});

test("register and unregister keep the registered properties; reset forgets them", async () => {
  await page.evaluate(() => {
    api.register({ a: 1 });
    api.unregister("plan");
    api.page();
    api.reset();
    api.page({ b: 2 });
  });
  assert.deepEqual(await crossed(), [
    ["_record", 4, "", '{"plan":"pro","a":1}'],
    ["_record", 4, "", '{"a":1}'],
    ["_record", 0, "", '{"a":1}'],
    ["_on", 20, 0],
    ["_record", 0, "", '{"b":2}'],
  ]);
});

test("what is not a plain object is dropped with a warning, never thrown; names that are not strings become \"\"", async () => {
  await page.evaluate(() => {
    const cycle = {};
    cycle.self = cycle;
    api.track("a", [1, 2]);
    api.track("b", cycle);
    api.track(42, { n: 1n });
    api.identify(null, "x");
    api.unregister(7);
    api._replayPage("https://shop.footfall.test/p\n/p\nT\n");
    api._replayAt(1764470000123);
    api._replayAt(NaN);
  });
  const plain = ["warn", "properties not a plain object; ignored"];
  const cycle = ["warn", "properties not serialisable (a cycle or BigInt?); ignored"];
  assert.deepEqual(await crossed(), [
    plain, ["_record", 1, "a", ""],
    cycle, ["_record", 1, "b", ""],
    cycle, ["_record", 1, "", ""],
    plain, ["_record", 2, "", ""],
    ["warn", "unregister needs a name (a string); ignored"],
    ["_record", 5, "https://shop.footfall.test/p\n/p\nT\n", ""],
    ["_on", 8, 1764470000123],
    ["_on", 8, NaN],
  ]);
  assert.equal(await page.evaluate(() => api.flush()), "flushed", "flush() is the host's");
});

test("the IDs read back as strings, and none as undefined", async () => {
  const got = await page.evaluate(() => {
    answers.ids = ["anon-1", "", "ann"];
    return [api.getAnonymousId(), api.getSessionId(), api.getUserId()];
  });
  assert.deepEqual(got, ["anon-1", undefined, "ann"]);
  assert.deepEqual(await crossed(), [["read", 0], ["read", 1], ["read", 2]]);
});

test("optOut, optIn and isOptedOut cross as one export, the last answering", async () => {
  const got = await page.evaluate(() => {
    answers.optedOut = true;
    api.optOut();
    const out = api.isOptedOut();
    answers.optedOut = false;
    api.optIn();
    return [out, api.isOptedOut()];
  });
  assert.deepEqual(got, [true, false]);
  assert.deepEqual(await crossed(), [["_on", 21, 0], ["_on", 23, 0], ["_on", 22, 0], ["_on", 23, 0]]);
});

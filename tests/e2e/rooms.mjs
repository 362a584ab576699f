// Shared pieces of the host rooms' tests (host-*.test.mjs): a page that loads one room's file
// of js-wrapper/src/host/ alone, as it is, with a stub of the wasm's exports that the room
// calls back (`call(name, a, b, c)`, recorded in `window.calls` with the arguments given; its
// answers from `window.answers[name]`). The stub is the boundary under test; the browser
// facility is real.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT } from "./harness.mjs";

/** The source of the room `name` (cookie, storage, net, page, locks, tasks, api). */
export function roomSource(name) {
  return readFileSync(join(ROOT, "js-wrapper", "src", "host", `${name}.js`), "utf8");
}

/** A page with the rooms `names` and the stub of the wasm's exports, then `body`. */
export function roomHtml(names, body = "") {
  const rooms = names.map((n) => `<script>${roomSource(n)}</script>`).join("\n");
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Room</title>
<script>
window.calls = [];
window.answers = {};
function call(name, ...args) {
  calls.push([name, ...args]);
  return answers[name];
}
</script>
${rooms}</head><body><h1>Room</h1>${body}</body></html>`;
}

/**
 * Opens `url` in `context` as a page with the rooms `names` (see `roomHtml`), answered by the
 * test itself (a fulfilled route: any host name and https, no server; such a page cannot reach
 * a server on this machine, so the net room's tests use a served page instead). `headers` are
 * added to the answer. Answers the page.
 */
export async function openRoom(context, url, names, { headers = {}, body = "" } = {}) {
  const html = roomHtml(names, body);
  await context.route(url, (route) =>
    route.fulfill({ status: 200, headers: { "content-type": "text/html; charset=utf-8", ...headers }, body: html }),
  );
  const page = await context.newPage();
  await page.goto(url);
  return page;
}

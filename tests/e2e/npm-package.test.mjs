// The npm package as a user gets it: `npm pack` of js-wrapper/dist/esm, `npm install` of the
// tarball into a fresh project, an app that does `import { init, track } from "footfall"`
// bundled by esbuild, served from its own origin (not the collector's), run in Chromium, and
// its events read back through the query API.
//
// Run: FOOTFALL_COLLECTOR_BIN=target/debug/footfall-collector node --test tests/e2e/npm-package.test.mjs
// Needs: the built package in js-wrapper/dist/esm, npm on PATH, node_modules/.bin/esbuild.
// No network: the package has no dependencies and is installed from the local tarball.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createServer } from "node:http";
import { mkdtempSync, mkdirSync, rmSync, writeFileSync, readFileSync, copyFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, normalize, extname, sep } from "node:path";
import { promisify } from "node:util";
import { startCollector, launchChromium, eventually, ROOT } from "./harness.mjs";

const run = promisify(execFile);
const PACKAGE_DIR = join(ROOT, "js-wrapper", "dist", "esm");
const ESBUILD = join(ROOT, "node_modules", ".bin", "esbuild");
const KEY = "npm-e2e";

let tmp, server, origin, collector, browser;
const served = []; // paths the static server was asked for

/** A static file server for `dir` on 127.0.0.1 with an OS-chosen port. */
function serveDir(dir) {
  const types = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".wasm": "application/wasm",
    ".map": "application/json",
  };
  const srv = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url, "http://x").pathname);
    served.push(path);
    const file = normalize(join(dir, path === "/" ? "index.html" : path));
    if (!file.startsWith(dir + sep) || !existsSync(file)) {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found");
      return;
    }
    res.writeHead(200, { "content-type": types[extname(file)] ?? "application/octet-stream", "cache-control": "no-store" });
    res.end(readFileSync(file));
  });
  return new Promise((resolve) => srv.listen(0, "127.0.0.1", () => resolve(srv)));
}

/** npm with a private cache in the temp dir, no audit, no fund, no update check. */
function npm(args, cwd) {
  return run("npm", args, {
    cwd,
    timeout: 60000,
    env: { ...process.env, npm_config_cache: join(tmp, "npm-cache"), npm_config_update_notifier: "false" },
  });
}

// Packed once, used by both tests.
let packing;
function pack() {
  packing ??= (async () => {
    const out = join(tmp, "pack");
    mkdirSync(out);
    const { stdout } = await npm(["pack", "--json", "--ignore-scripts", "--pack-destination", out], PACKAGE_DIR);
    const [info] = JSON.parse(stdout);
    return { tarball: join(out, info.filename), info };
  })();
  return packing;
}

before(async () => {
  tmp = mkdtempSync(join(tmpdir(), "footfall-npm-"));
  mkdirSync(join(tmp, "site"));
  server = await serveDir(join(tmp, "site"));
  origin = `http://127.0.0.1:${server.address().port}`;
  // Only the app's origin may send with this key (the default demo site is replaced).
  collector = await startCollector(["--site", `${KEY}=${origin}`]);
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await collector?.stop();
  await new Promise((r) => (server ? server.close(r) : r()));
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

test("npm pack: the tarball holds the module, the wasm and the types", async () => {
  const { tarball, info } = await pack();
  const { stdout } = await run("tar", ["-tzf", tarball]);
  const files = stdout.split("\n").filter(Boolean).sort();
  assert.deepEqual(files, [
    "package/footfall_sdk.js",
    "package/footfall_sdk_bg.wasm",
    "package/host.js",
    "package/index.d.ts",
    "package/index.js",
    "package/package.json",
  ]);
  assert.equal(info.name, "footfall");

  const { stdout: manifestText } = await run("tar", ["-xzOf", tarball, "package/package.json"]);
  const manifest = JSON.parse(manifestText);
  assert.equal(manifest.type, "module");
  assert.equal(manifest.types, "./index.d.ts");
  assert.equal(manifest.exports["."].types, "./index.d.ts");
  assert.equal(manifest.exports["."].import, "./index.js");
  assert.deepEqual(manifest.dependencies ?? {}, {}, "nothing else to install");

  // The types cover the whole API without running a TypeScript compiler: every function the
  // module exports is declared, and nothing is declared that the module does not export.
  const { stdout: js } = await run("tar", ["-xzOf", tarball, "package/index.js"]);
  const { stdout: dts } = await run("tar", ["-xzOf", tarball, "package/index.d.ts"]);
  const exported = [...js.matchAll(/^export (?:const|function|async function) (\w+)/gm)].map((m) => m[1]).sort();
  const declared = [...dts.matchAll(/^export function (\w+)/gm)].map((m) => m[1]).sort();
  assert.ok(exported.length >= 15, `the module exports the API (${exported})`);
  assert.deepEqual(declared, exported);
  assert.match(dts, /export interface Options\b/);
});

test("npm install + esbuild: an app on its own origin tracks, flushes and is stored", async () => {
  const { tarball } = await pack();
  const app = join(tmp, "app");
  mkdirSync(app);
  writeFileSync(join(app, "package.json"), JSON.stringify({ name: "footfall-npm-e2e-app", private: true, type: "module" }));
  await npm(["install", tarball, "--offline", "--no-audit", "--no-fund", "--ignore-scripts"], app);
  const installed = join(app, "node_modules", "footfall");
  for (const f of ["index.js", "index.d.ts", "footfall_sdk.js", "footfall_sdk_bg.wasm"]) {
    assert.ok(existsSync(join(installed, f)), `node_modules/footfall/${f} is installed`);
  }

  // The app: one call before init (queued by the module, replayed once the wasm runs), then
  // the API on window for the test to drive. A long flush interval: only flush() sends.
  writeFileSync(join(app, "main.js"), `import { init, track, getAnonymousId, getSessionId, flush } from "footfall";
track("before_init", { when: "module evaluation" });
window.sdk = { track, flush, getAnonymousId, getSessionId };
window.started = init({ key: ${JSON.stringify(KEY)}, endpoint: ${JSON.stringify(collector.url)}, flushInterval: 600000 });
`);
  const site = join(tmp, "site");
  await run(ESBUILD, ["main.js", "--bundle", "--format=esm", `--outfile=${join(site, "app.js")}`,
    `--metafile=${join(app, "meta.json")}`, "--log-level=warning"], { cwd: app, timeout: 60000 });
  const inputs = Object.keys(JSON.parse(readFileSync(join(app, "meta.json"), "utf8")).inputs);
  assert.ok(inputs.includes("node_modules/footfall/index.js"), `bundled from the installed package: ${inputs}`);
  // esbuild leaves `new URL("./footfall_sdk_bg.wasm", import.meta.url)` as it is (it is not an
  // import, so --loader:.wasm=file does not apply): the wasm has to sit next to the bundle.
  assert.match(readFileSync(join(site, "app.js"), "utf8"), /new URL\("\.\/footfall_sdk_bg\.wasm", import\.meta\.url\)/);
  copyFileSync(join(installed, "footfall_sdk_bg.wasm"), join(site, "footfall_sdk_bg.wasm"));
  writeFileSync(join(site, "index.html"), `<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>npm app</title><link rel="icon" href="data:,"><script type="module" src="./app.js"></script></head>
<body><h1>An app that installed footfall from npm</h1></body></html>`);

  const context = await browser.newContext();
  const page = await context.newPage();
  const problems = [];
  page.on("pageerror", (e) => problems.push(`pageerror: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "warning" || m.type() === "error") problems.push(`${m.type()}: ${m.text()}`);
  });
  await page.goto(`${origin}/index.html?from=npm`);
  await page.evaluate(() => window.started);
  const anonymousId = await page.evaluate(() => window.sdk.getAnonymousId());
  const sessionId = await page.evaluate(() => window.sdk.getSessionId());
  assert.match(anonymousId ?? "", /^[0-9a-f-]{36}$/, "the SDK started (a UUID anonymous ID)");
  assert.match(sessionId ?? "", /^[0-9a-f-]{36}$/);
  assert.ok(served.includes("/footfall_sdk_bg.wasm"), "the wasm came from beside the bundle");
  const cookie = (await context.cookies(origin)).find((c) => c.name === "ff_id");
  assert.equal(cookie?.value, anonymousId, "the anonymous ID is in the app origin's cookie");

  await page.evaluate(async () => {
    window.sdk.track("npm_clicked", { plan: "pro", n: 1 });
    await window.sdk.flush();
  });

  const events = await eventually(async () => {
    const r = await collector.api(`/api/v1/users/${anonymousId}`);
    const all = r.body.sessions?.flatMap((s) => s.events.map((e) => ({ ...e, session_id: s.session_id }))) ?? [];
    return all.some((e) => e.name === "npm_clicked") && all;
  });
  assert.deepEqual(events.map((e) => e.name), ["$pageview", "before_init", "npm_clicked"],
    "the page view, the call queued before the wasm loaded, then the call after");
  assert.ok(events.every((e) => e.session_id === sessionId), "all in the page's session");
  assert.deepEqual(events[1].props, { when: "module evaluation" });
  assert.deepEqual(events[2].props, { plan: "pro", n: 1 });
  assert.equal(events[0].url, `${origin}/index.html?from=npm`);
  assert.deepEqual(problems, [], "no warning or error in the page");
  await context.close();
});

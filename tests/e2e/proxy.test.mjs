// A production-like deployment: the collector behind Debian's nginx with TLS, configured by the
// very server block the README shows (examples/deploy/nginx.conf; only its placeholders are
// replaced: ports, certificate paths, upstream port), and the shop on a TLS origin of its own.
// Chromium reaches https://shop.test:PORT and https://collector.test:PORT (both mapped to
// 127.0.0.1, a self-signed certificate made here by openssl). The collector runs with
// --trusted-proxy and --store-ip: the IP it stores must be the client's, taken from the
// X-Forwarded-For that nginx sets, not nginx's own. To tell the two apart, nginx connects to
// the collector from 127.0.0.3 (`proxy_bind`, the one line added for the test), the trusted
// proxy, while clients connect from 127.0.0.1 (the browser) and 127.0.0.4 (a second client).
// The query API does not answer with stored IPs, so they are read from the SQLite file.
//
// Needs: /usr/sbin/nginx, openssl, sqlite3 (cargo xtask setup installs them).
// Run: FOOTFALL_COLLECTOR_BIN=target/debug/footfall-collector node --test tests/e2e/proxy.test.mjs
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { createServer, connect } from "node:net";
import { request } from "node:https";
import { request as httpRequest } from "node:http";
import { mkdtempSync, mkdirSync, rmSync, writeFileSync, readFileSync, chmodSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import {
  ROOT, startCollector, launchChromium, sdkReady, eventually, storedEvents, withCollector,
} from "./harness.mjs";

const run = promisify(execFile);
const NGINX = process.env.NGINX || "/usr/sbin/nginx";
const PROXY = "127.0.0.3"; // nginx's address towards the collector: the trusted proxy
const OTHER_CLIENT = "127.0.0.4";

let tmp, nginx, collector, browser, port, httpPort, shopUrl, collectorUrl;

/** A port the OS picks as free (bound to 0, then released for nginx to take). */
function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port: p } = s.address();
      s.close(() => resolve(p));
    });
  });
}

/** `text` with `from` replaced by `to`, where `from` must occur exactly `times` times. */
function substitute(text, from, to, times = 1) {
  const found = text.split(from).length - 1;
  if (found !== times) {
    throw new Error(`examples/deploy/nginx.conf: expected ${times} × ${JSON.stringify(from)}, found ${found}`);
  }
  return text.replaceAll(from, to);
}

/** The README's server block, its placeholders replaced for this test. */
function collectorBlock({ tlsPort, httpPort, cert, key, upstreamPort }) {
  let c = readFileSync(join(ROOT, "examples", "deploy", "nginx.conf"), "utf8");
  c = substitute(c, "listen 443 ", `listen 127.0.0.1:${tlsPort} `);
  c = substitute(c, "listen 80;", `listen 127.0.0.1:${httpPort};`);
  c = substitute(c, "/etc/ssl/certs/collector.example.com.pem", cert);
  c = substitute(c, "/etc/ssl/private/collector.example.com.key", key);
  c = substitute(c, "server_name collector.example.com;", "server_name collector.test;", 2);
  c = substitute(c, "proxy_pass http://127.0.0.1:8080;",
    `proxy_pass http://127.0.0.1:${upstreamPort};\n        proxy_bind ${PROXY}; # test only: tells nginx's address from the clients'`);
  return c;
}

/** Starts nginx in the foreground; resolves once it accepts connections on `port`. */
async function startNginx(conf) {
  const child = spawn(NGINX, ["-p", tmp, "-c", conf, "-g", `daemon off; pid ${join(tmp, "nginx.pid")}; error_log stderr;`],
    { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (d) => (stderr += d));
  const exited = new Promise((r) => child.on("exit", r));
  await Promise.race([
    eventually(() => new Promise((resolve) => {
      const sock = connect(port, "127.0.0.1", () => {
        sock.destroy();
        resolve(true);
      });
      sock.on("error", () => resolve(false));
    }), 10000),
    exited.then((code) => {
      throw new Error(`nginx exited (${code}): ${stderr}`);
    }),
  ]);
  return {
    stderr: () => stderr,
    async stop() {
      if (child.exitCode === null) {
        child.kill("SIGTERM");
        await exited;
      }
    },
  };
}

before(async () => {
  tmp = mkdtempSync(join(tmpdir(), "footfall-proxy-"));
  chmodSync(tmp, 0o755); // nginx's workers (nobody) read the shop's files
  const cert = join(tmp, "test.crt");
  const key = join(tmp, "test.key");
  await run("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
    "-keyout", key, "-out", cert, "-subj", "/CN=collector.test",
    "-addext", "subjectAltName=DNS:collector.test,DNS:shop.test"]);

  port = await freePort();
  httpPort = await freePort();
  shopUrl = `https://shop.test:${port}`;
  collectorUrl = `https://collector.test:${port}`;
  collector = await startCollector([
    "--trusted-proxy", `${PROXY}/32`, "--store-ip", "true", "--rate-limit", "0", "--site", `demo=${shopUrl}`,
  ]);

  // The shop: a static site on its own TLS origin, the demo shop with the README's script tag.
  const shop = join(tmp, "shop");
  mkdirSync(shop);
  for (const f of ["index.html", "product.html", "style.css"]) {
    const text = readFileSync(join(ROOT, "examples", "shop", f), "utf8");
    writeFileSync(join(shop, f), f.endsWith(".html") ? withCollector(text, collectorUrl) : text);
  }
  const temp = (name) => `${name}_temp_path ${join(tmp, name)};`;
  const conf = join(tmp, "nginx.conf");
  writeFileSync(conf, `worker_processes 1;
events { worker_connections 64; }
http {
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log off;
    ${["client_body", "proxy", "fastcgi", "uwsgi", "scgi"].map(temp).join("\n    ")}

    # ---- examples/deploy/nginx.conf ----
${collectorBlock({ tlsPort: port, httpPort, cert, key, upstreamPort: new URL(collector.url).port })}
    # ---- the shop (test only) ----
    server {
        listen 127.0.0.1:${port} ssl http2;
        server_name shop.test;
        ssl_certificate ${cert};
        ssl_certificate_key ${key};
        root ${shop};
        location = /favicon.ico { return 204; }
    }
}
`);
  nginx = await startNginx(conf);
  browser = await launchChromium(["--host-resolver-rules=MAP shop.test 127.0.0.1, MAP collector.test 127.0.0.1"]);
});

after(async () => {
  await browser?.close();
  await nginx?.stop();
  await collector?.stop();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

/** The stored `ip` of every event of the visitor, read from the collector's SQLite file. */
async function storedIps(anonymousId) {
  const db = join(collector.dataDir, "footfall.sqlite");
  const { stdout } = await run("sqlite3", ["-json", db,
    `SELECT name, ip FROM events WHERE anonymous_id = '${anonymousId.replace(/'/g, "")}' ORDER BY seq`]);
  return stdout.trim() ? JSON.parse(stdout) : [];
}

/** POSTs `body` to the collector through nginx from `localAddress`, with extra `headers`. */
function postThroughNginx(body, localAddress, headers) {
  return new Promise((resolve, reject) => {
    const req = request({
      host: "127.0.0.1", port, servername: "collector.test", localAddress, method: "POST", path: "/v1/batch",
      rejectUnauthorized: false,
      headers: { host: `collector.test:${port}`, "content-type": "text/plain", ...headers },
    }, (res) => {
      let text = "";
      res.on("data", (d) => (text += d));
      res.on("end", () => resolve({ status: res.statusCode, body: JSON.parse(text) }));
    });
    req.on("error", reject);
    req.end(body);
  });
}

test("https shop → nginx (TLS) → collector: tracked, and the stored IP is the client's, not nginx's",
  { timeout: 60000 }, async () => {
    const context = await browser.newContext({ ignoreHTTPSErrors: true });
    const page = await context.newPage();
    const problems = [];
    page.on("pageerror", (e) => problems.push(`pageerror: ${e.message}`));
    page.on("console", (m) => {
      if (m.type() === "error" || m.type() === "warning") problems.push(`${m.type()}: ${m.text()}`);
    });
    const sdk = [];
    page.on("response", (r) => {
      if (r.url().startsWith(`${collectorUrl}/sdk/`)) sdk.push(r.status());
    });
    await page.goto(`${shopUrl}/index.html?utm_campaign=tls`);
    await sdkReady(page);
    assert.deepEqual(sdk, [200], "footfall.js (the wasm is inside it) came from https://collector.test through nginx");
    const anonymousId = await page.evaluate(() => footfall.getAnonymousId());
    const cookie = (await context.cookies(shopUrl)).find((c) => c.name === "ff_id");
    assert.equal(cookie?.value, anonymousId);
    assert.equal(cookie.secure, true, "Secure on https");
    await page.click("#add-to-cart");
    await page.evaluate(() => footfall.flush());

    const events = await eventually(async () => {
      const ev = await storedEvents(collector, anonymousId);
      return ev.some((e) => e.name === "add_to_cart") && ev;
    });
    assert.deepEqual(events.map((e) => e.name), ["$pageview", "shop_opened", "add_to_cart"]);
    assert.equal(events[0].url, `${shopUrl}/index.html?utm_campaign=tls`);

    const ips = await storedIps(anonymousId);
    assert.deepEqual(ips.map((r) => r.name), ["$pageview", "shop_opened", "add_to_cart"]);
    assert.deepEqual([...new Set(ips.map((r) => r.ip))], ["127.0.0.1"],
      `the browser's address from X-Forwarded-For, not nginx's ${PROXY}: ${JSON.stringify(ips)}`);
    assert.deepEqual(problems, [], "nothing failed in the page");
    await context.close();
  });

test("through nginx, another client's address is stored and a forged X-Forwarded-For is not", async () => {
  // The browser's 127.0.0.1 alone could also be nginx's address if proxy_bind had no effect;
  // a client on 127.0.0.4 can only be stored if the collector read nginx's X-Forwarded-For.
  const anonymousId = "3f0c2a1e-5b6d-4c7e-8f90-0000000000a4";
  const now = new Date().toISOString();
  const batch = {
    key: "demo", sent_at: now, events: [{
      event_id: "019ab0b4-0000-7000-8000-0000000000a4", type: "track", name: "server_side", timestamp: now,
      anonymous_id: anonymousId, user_id: null, session_id: "019ab0b4-8a20-7000-8000-0000000000a4", seq: 1,
      page: { url: `${shopUrl}/`, path: "/", title: "", referrer: "" }, props: {},
    }],
  };
  const answer = await postThroughNginx(JSON.stringify(batch), OTHER_CLIENT, { "x-forwarded-for": "198.51.100.7" });
  assert.equal(answer.status, 200, JSON.stringify(answer.body));
  assert.equal(answer.body.accepted, 1);
  assert.deepEqual(await storedIps(anonymousId), [{ name: "server_side", ip: OTHER_CLIENT }],
    "the client nginx saw, not nginx (127.0.0.3) nor the address the client claimed (198.51.100.7)");
});

test("plain http to the collector's name is redirected to https", async () => {
  const answer = await new Promise((resolve, reject) => {
    const req = httpRequest({ host: "127.0.0.1", port: httpPort, path: "/sdk/footfall.js", headers: { host: "collector.test" } },
      (res) => {
        res.resume();
        resolve({ status: res.statusCode, location: res.headers.location });
      });
    req.on("error", reject);
    req.end();
  });
  assert.deepEqual(answer, { status: 301, location: "https://collector.test/sdk/footfall.js" });
});

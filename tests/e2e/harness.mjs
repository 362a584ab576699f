// Shared pieces of the end-to-end tests: a real collector process on 127.0.0.1:0 with a temp
// data dir, Debian's Chromium driven by playwright-core, and an API client with the token.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const ARTIFACTS = join(ROOT, "tests", "artifacts");
const TOKEN = "e2e-admin-token";

/** Starts the built collector; resolves once it printed its URL. */
export async function startCollector(extraArgs = []) {
  const dataDir = mkdtempSync(join(tmpdir(), "footfall-e2e-"));
  const bin = process.env.FOOTFALL_COLLECTOR_BIN || join(ROOT, "target", "debug", "footfall-collector");
  const child = spawn(
    bin,
    ["--listen", "127.0.0.1:0", "--data-dir", dataDir, "--admin-token", TOKEN, ...extraArgs],
    { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, RUST_LOG: "warn" } },
  );
  let stderr = "";
  child.stderr.on("data", (d) => (stderr += d));
  const url = await new Promise((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => reject(new Error(`collector did not start: ${stderr}`)), 15000);
    child.stdout.on("data", (d) => {
      out += d;
      const m = out.match(/footfall listening on (http:\/\/\S+)/);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    child.on("exit", (code) => reject(new Error(`collector exited (${code}): ${stderr}`)));
  });
  return {
    url,
    dataDir,
    async api(path, { token = TOKEN, method = "GET" } = {}) {
      const headers = token ? { authorization: `Bearer ${token}` } : {};
      const res = await fetch(url + path, { method, headers });
      return { status: res.status, body: await res.json() };
    },
    async stop() {
      child.kill("SIGTERM");
      await new Promise((r) => (child.exitCode !== null ? r() : child.on("exit", r)));
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Debian's Chromium, headless, with the flags this machine needs. */
export function launchChromium(extraArgs = []) {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: [
      "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
      ...extraArgs,
    ],
  });
}

/** Waits until the SDK has loaded and started on `page`. */
export async function sdkReady(page) {
  await page.waitForFunction(
    () => typeof window.footfall?.getAnonymousId === "function" && !window.footfall.q &&
      !!window.footfall.getAnonymousId(),
    null,
    { timeout: 15000 },
  );
}

/** Polls `probe` until it returns a truthy value or `ms` passes. */
export async function eventually(probe, ms = 10000) {
  const until = Date.now() + ms;
  let last;
  while (Date.now() < until) {
    last = await probe();
    if (last) return last;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`condition not met within ${ms} ms; last: ${JSON.stringify(last)}`);
}

export async function screenshot(page, name) {
  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
}

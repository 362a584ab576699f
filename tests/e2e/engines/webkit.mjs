// WebKit: WebKitGTK's MiniBrowser (Debian's webkit2gtk-driver) through selenium-webdriver over
// WebKitWebDriver, on an Xvfb display of its own (a free one, picked by Xvfb itself). One
// WebKitWebDriver holds one session, and a session is one MiniBrowser with its own (ephemeral)
// cookies and storage: so each profile is a WebKitWebDriver on a free port with its session.
// Each tab is a window of that MiniBrowser; a blank first window stays open so that closing the
// last page does not end the session. WebDriver talks to one window at a time, so a profile's
// commands take turns (switch to the tab's window, then act).
import { spawn } from "node:child_process";
import { createServer } from "node:net";
import { Builder } from "selenium-webdriver";
import { callSource } from "./index.mjs";

const MINIBROWSER = process.env.MINIBROWSER || "/usr/lib/x86_64-linux-gnu/webkit2gtk-4.1/MiniBrowser";
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Starts Xvfb on a display it picks (-displayfd); answers { display, stop }. */
async function startXvfb() {
  const child = spawn("Xvfb", ["-displayfd", "3", "-screen", "0", "1280x900x24", "-nolisten", "tcp"], {
    stdio: ["ignore", "ignore", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr.on("data", (d) => (stderr += d));
  const display = await new Promise((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => reject(new Error(`Xvfb did not start: ${stderr}`)), 15000);
    child.stdio[3].on("data", (d) => {
      out += d;
      if (out.includes("\n")) {
        clearTimeout(timer);
        resolve(`:${out.trim()}`);
      }
    });
    child.on("exit", (code) => reject(new Error(`Xvfb exited (${code}): ${stderr}`)));
    child.on("error", reject);
  });
  return { display, stop: () => stopChild(child) };
}

function stopChild(child) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
    child.once("exit", () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill("SIGTERM");
  });
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.unref();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** A WebKitWebDriver on a free port, once it answers /status. */
async function startDriver(display) {
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    const child = spawn("WebKitWebDriver", [`--port=${port}`], {
      env: { ...process.env, DISPLAY: display },
      stdio: ["ignore", "ignore", "pipe"],
    });
    let stderr = "";
    child.stderr.on("data", (d) => (stderr += d));
    const url = `http://127.0.0.1:${port}`;
    const until = Date.now() + 10000;
    while (Date.now() < until && child.exitCode === null) {
      const ok = await fetch(`${url}/status`).then((r) => r.ok, () => false);
      if (ok) return { url, stop: () => stopChild(child) };
      await sleep(100);
    }
    await stopChild(child);
    if (attempt >= 2) throw new Error(`WebKitWebDriver did not start on port ${port}: ${stderr}`);
  }
}

export async function launch() {
  const xvfb = await startXvfb();
  const profiles = new Set();
  const engine = {
    name: "webkit",
    browser: "Safari",
    version: null,
    async newProfile() {
      const driver = await startDriver(xvfb.display);
      let session;
      try {
        session = await new Builder().usingServer(driver.url).withCapabilities({
          browserName: "MiniBrowser",
          "webkitgtk:browserOptions": { binary: MINIBROWSER, args: ["--automation"] },
        }).build();
      } catch (e) {
        await driver.stop();
        throw e;
      }
      engine.version ??= (await session.getCapabilities()).get("browserVersion");
      const anchor = await session.getWindowHandle();
      // One command at a time: each acts on its own tab's window.
      let turn = Promise.resolve();
      const inTurn = (f) => {
        const run = turn.then(f, f);
        turn = run.catch(() => {});
        return run;
      };
      const on = (handle, f) => inTurn(async () => {
        await session.switchTo().window(handle);
        return f();
      });
      const profile = {
        open: (url) => inTurn(async () => {
          // A window rather than a tab: both stay visible, as Playwright's pages are (a tab
          // behind another would be hidden, which ends its session in "tab" scope).
          await session.switchTo().newWindow("window");
          const handle = await session.getWindowHandle();
          await session.get(url);
          return tab(handle, on, inTurn, session, anchor);
        }),
        cookies: () => inTurn(async () => {
          // WebDriver answers the cookies of the current window's document: a page's tab.
          const handles = (await session.getAllWindowHandles()).filter((h) => h !== anchor);
          if (handles.length) await session.switchTo().window(handles.at(-1));
          return (await session.manage().getCookies()).map((c) => ({
            name: c.name, value: c.value, domain: c.domain, path: c.path, expires: c.expiry ?? -1,
            sameSite: c.sameSite, secure: c.secure, httpOnly: c.httpOnly,
          }));
        }),
        async close() {
          profiles.delete(profile);
          await inTurn(() => session.quit()).catch(() => {});
          await driver.stop();
        },
      };
      profiles.add(profile);
      return profile;
    },
    async close() {
      for (const p of [...profiles]) await p.close();
      await xvfb.stop();
    },
  };
  return engine;
}

function tab(handle, on, inTurn, session, anchor) {
  return {
    evaluate: (fn, arg) => on(handle, () => session.executeScript(
      `return ${callSource(fn)}(arguments[0]);`, arg === undefined ? null : arg)),
    goto: (url) => on(handle, () => session.get(url)),
    reload: () => on(handle, () => session.navigate().refresh()),
    back: () => on(handle, () => session.navigate().back()),
    // Closes the window as a user does (pagehide runs), then talks to the blank first window.
    close: () => on(handle, async () => {
      await session.close();
      await session.switchTo().window(anchor);
    }),
  };
}

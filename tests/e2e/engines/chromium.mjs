// Chromium through playwright-core (harness.launchChromium: Debian's /usr/bin/chromium),
// each profile a browser context with a person's user agent (see index.mjs, CHROME_UA).
import { chromium } from "playwright-core";
import { CHROME_UA } from "./index.mjs";

export async function launch() {
  // As harness.launchChromium, but with the back/forward cache left on (Playwright turns it off).
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    ignoreDefaultArgs: ["--disable-back-forward-cache"],
    args: [
      "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
      // Also at launch (as harness.launchChromium): the context's user agent does not reach the
      // beacons a page sends as it unloads, which would otherwise say HeadlessChrome and be
      // stored as a bot's (left out of the answers the tests read).
      `--user-agent=${CHROME_UA}`,
    ],
  });
  return {
    name: "chromium",
    browser: "Chrome",
    version: browser.version(),
    async newProfile() {
      const context = await browser.newContext({ userAgent: CHROME_UA });
      return {
        async open(url) {
          const page = await context.newPage();
          await page.goto(url);
          return tab(page);
        },
        async cookies() {
          return (await context.cookies()).map((c) => ({
            name: c.name, value: c.value, domain: c.domain, path: c.path, expires: c.expires,
            sameSite: c.sameSite, secure: c.secure, httpOnly: c.httpOnly,
          }));
        },
        close: () => context.close().catch(() => {}),
      };
    },
    close: () => browser.close(),
  };
}

function tab(page) {
  return {
    evaluate: (fn, arg) => page.evaluate(fn, arg),
    goto: (url) => page.goto(url).then(() => {}),
    reload: () => page.reload().then(() => {}),
    // A restore from the back/forward cache fires no `load`: wait for the commit only.
    back: () => page.goBack({ waitUntil: "commit" }).then(() => {}),
    // As a user closes a tab: pagehide runs (and its beacons leave).
    close: () => page.close(),
  };
}

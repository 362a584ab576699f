// Firefox ESR (Debian's firefox-esr) through puppeteer-core over WebDriver BiDi; each profile a
// BiDi user context (own cookies and storage).
import puppeteer from "puppeteer-core";

export async function launch() {
  const browser = await puppeteer.launch({
    browser: "firefox",
    executablePath: process.env.FIREFOX || "/usr/bin/firefox-esr",
    headless: true,
    // Puppeteer makes (and removes on close) a temporary profile directory of its own.
    extraPrefsFirefox: {
      // Pages of localhost are not "secure" in this sense; nothing here wants HTTPS-only mode.
      "dom.security.https_only_mode": false,
    },
  });
  return {
    name: "firefox",
    browser: "Firefox",
    version: await browser.version(),
    async newProfile() {
      const context = await browser.createBrowserContext();
      return {
        async open(url) {
          // A tab, as a person opens one: the tab it covers becomes hidden.
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
    // Starts the traversal without waiting for a `load`: a restore from the back/forward cache
    // fires none (the scenario waits for what it needs).
    back: () => page.evaluate(() => setTimeout(() => history.back(), 0)).then(() => {}),
    // browsingContext.close without a beforeunload prompt: the page's pagehide still runs.
    close: () => page.close(),
  };
}

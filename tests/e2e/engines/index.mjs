// One interface over the three browser engines the cross-engine suite (tests/e2e/engines.test.mjs)
// and bench/engines.mjs drive: Chromium (playwright-core, as the deep suites), Firefox ESR
// (puppeteer-core over WebDriver BiDi) and WebKitGTK's MiniBrowser (selenium-webdriver over
// WebKitWebDriver, under an Xvfb of its own). The scenarios only use what is below; only the
// driver differs.
//
//   const engine = await launchEngine("firefox");   // engine.name, engine.browser, engine.version
//   const profile = await engine.newProfile();     // own cookies and storage
//   const tab = await profile.open(url);           // a new tab, loaded
//   await tab.evaluate((a) => ..., arg);           // fn runs in the page; its promise is awaited
//   await tab.goto(url); await tab.reload(); await tab.back(); await tab.close();
//   await profile.cookies();                       // [{ name, value, domain, path, expires (s), sameSite, secure, httpOnly }]
//   await profile.close(); await engine.close();
//
// What the engines need of the machine: `cargo xtask setup` installs them (Debian's chromium,
// firefox-esr, webkit2gtk-driver and xvfb; the npm packages of package.json).

/** The engines, in the order `cargo xtask test` reports them. */
export const ENGINES = ["chromium", "firefox", "webkit"];

/**
 * A normal person's user agent for headless Chromium, whose own says `HeadlessChrome` (which the
 * collector counts as a bot and leaves out of its answers). Firefox's and MiniBrowser's user
 * agents already look like a person's.
 */
export const CHROME_UA =
  "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36";

/** Starts `name` (one of ENGINES). */
export async function launchEngine(name) {
  switch (name) {
    case "chromium":
      return (await import("./chromium.mjs")).launch();
    case "firefox":
      return (await import("./firefox.mjs")).launch();
    case "webkit":
      return (await import("./webkit.mjs")).launch();
    default:
      throw new Error(`unknown engine ${JSON.stringify(name)}: one of ${ENGINES.join(", ")}`);
  }
}

/** `fn` as the source of an expression that calls it with one JSON argument. */
export function callSource(fn) {
  if (typeof fn !== "function") throw new Error("evaluate wants a function");
  return `(${fn.toString()})`;
}

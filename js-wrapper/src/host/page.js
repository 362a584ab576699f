// The page room: what the SDK reads of the page and hears from it. `page()` and `context()`
// answer one line each (the URL, path, title and referrer; screen, viewport, language and
// time zone), `facts()` a few bits, `t0()` when the navigation started; `listen` reports the
// page's events to the wasm's `_on(event, persisted)` and, with `withHistory`, wraps the
// History API. `call(name, a, b)` calls a wasm export (guarded by host.js).
function footfallPage(call) {
  // The URL and title read each time, the path when the URL changed, the referrer once.
  var shownUrl = "";
  var shownPath = "";
  var referrer = null;
  // Screen, language and time zone, read once; the viewport again after `resize`.
  var fixed = null;
  var viewport = null;
  function dims(o, w, h) {
    return Math.max(0, (o && o[w]) | 0) + "x" + Math.max(0, (o && o[h]) | 0);
  }
  function on(event, target, name) {
    target.addEventListener(name, (e) => call("_on", event, e.persisted ? 1 : 0));
  }
  return {
    page() {
      var href = location.href;
      if (href !== shownUrl || !href) {
        shownPath = location.pathname;
        if (referrer === null) referrer = document.referrer;
        shownUrl = href;
      }
      return href + "\n" + shownPath + "\n" + document.title + "\n" + referrer;
    },
    context() {
      if (!fixed) {
        var tz = "";
        try {
          tz = Intl.DateTimeFormat().resolvedOptions().timeZone || "";
        } catch (e) {}
        fixed = [dims(window.screen, "width", "height"), navigator.language || "", tz];
      }
      if (viewport === null) viewport = dims(window, "innerWidth", "innerHeight");
      return fixed[0] + "\n" + viewport + "\n" + fixed[1] + "\n" + fixed[2];
    },
    // Bits: 1 online, 2 hidden, 4 Do Not Track or Global Privacy Control.
    facts() {
      var n = navigator;
      return (
        (n.onLine ? 1 : 0) |
        (document.visibilityState === "hidden" ? 2 : 0) |
        (n.doNotTrack === "1" || n.globalPrivacyControl === true ? 4 : 0)
      );
    },
    // When the page's navigation started (every browser with WebAssembly has it; were it
    // missing, the wasm would read NaN, as 0: unknown).
    t0() {
      return performance.timeOrigin;
    },
    // The page's events, for the life of the page, as numbers: see `_on` in api.rs.
    listen(withHistory) {
      on(0, document, "visibilitychange");
      on(1, window, "online");
      on(2, window, "pagehide");
      on(3, window, "pageshow");
      ["pointerdown", "keydown", "scroll", "touchstart"].forEach((name) => on(4, window, name));
      window.addEventListener("resize", () => (viewport = null));
      if (!withHistory) return;
      on(5, window, "popstate");
      // The page's pushState/replaceState do what they did, return what they returned and
      // throw what they threw (then the SDK hears nothing).
      [["pushState", 5], ["replaceState", 6]].forEach((m) => {
        var original = history[m[0]];
        if (typeof original !== "function") return;
        history[m[0]] = function (state, title, url) {
          var r = original.call(history, state, title, url);
          call("_on", m[1], 0);
          return r;
        };
      });
    },
  };
}

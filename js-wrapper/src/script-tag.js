// The script-tag build: appended to wasm-bindgen's `no-modules` output (which defines
// `footfall_wasm`). It loads footfall_bg.wasm from beside this script, starts the SDK from the
// tag's data- attributes, replays the loader's queue, and puts the real API on window.footfall.
// Every call is guarded: nothing the page does with it can throw into the page.
(function (w) {
  var script = document.currentScript;
  var base = script && script.src ? script.src : location.href;
  var origin = new URL(base).origin;
  var names = ["init", "page", "track", "identify", "setUserProperties", "register",
    "unregister", "reset", "flush", "optOut", "optIn", "isOptedOut", "getAnonymousId",
    "getSessionId", "getUserId"];
  var warned = false;

  // Calls made while the wasm loads, if the page had no loader snippet.
  if (!w.footfall) {
    w.footfall = { q: [] };
    names.forEach(function (m) {
      w.footfall[m] = function () { w.footfall.q.push([Date.now(), m, [].slice.call(arguments)]); };
    });
  }

  function guard(fn) {
    return function () {
      try {
        return fn.apply(null, arguments);
      } catch (e) {
        if (!warned) console.warn("footfall: internal error, call ignored", e);
        warned = true;
      }
    };
  }

  footfall_wasm({ module_or_path: new URL("footfall_bg.wasm", base) }).then(function () {
    var sdk = footfall_wasm;
    var api = {};
    names.forEach(function (m) { api[m] = guard(sdk[m]); });
    // The endpoint defaults to the origin the script came from.
    api.init = guard(function (options) {
      var o = {};
      for (var k in options || {}) o[k] = options[k];
      if (!o.endpoint) o.endpoint = origin;
      sdk.init(o);
    });
    var queued = (w.footfall && w.footfall.q) || [];
    w.footfall = api;
    if (script && script.dataset.key) api.init(script.dataset);
    queued.forEach(function (call) {
      var fn = api[call[1]];
      if (!fn) return;
      guard(sdk._replayAt)(call[0]);
      var result = fn.apply(null, call[2]);
      guard(sdk._replayAt)(NaN);
      if (call[3]) Promise.resolve(result).then(call[3], call[3]);
    });
  }).catch(function (e) {
    console.warn("footfall: the SDK could not load; nothing is tracked", e);
  });
})(window);

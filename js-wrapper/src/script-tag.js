// The script-tag build: bundled after wasm-bindgen's glue (whose exports the build gathers as
// `footfall_wasm`) and the host (host.js and its rooms). It compiles the wasm whose bytes the
// build wrote into this file, starts the SDK from the tag's data- attributes, replays the
// loader's queue, and puts the real API on window.footfall. Every call is guarded: nothing the page does with it can throw into the page.
//
// Calls queued before the SDK has started are not lost when the page goes first (closed or
// navigated right after a `track`): the wasm's bytes are here from the moment this script runs
// (a separate fetch of footfall_bg.wasm had mostly not finished by the load event), and the
// SDK starts from them before this script ends. Only if it cannot (the bytes mangled, and the
// wasm beside this file not fetched yet) are the calls kept in localStorage (`ff_q`) with the
// page they were made on, for the next page load of the site to replay.
(function (w, wasm) {
  var script = document.currentScript;
  var base = script && script.src ? script.src : location.href;
  var origin = new URL(base).origin;
  var KEPT = "ff_q";
  var warned = false;
  var sdk = footfall_wasm;
  // The wasm's host (host.js, included before this file), handed to the glue by `initSync`.
  var host = footfallHost(sdk);
  // The public API's names: the API room's, but its `_` ones (for this file only).
  var names = Object.keys(host.api).filter((m) => m[0] !== "_");
  // The API once the SDK runs.
  var api;

  // x-user-defined reads the bytes 0x80 to 0xFF as U+F780 to U+F7FF, the others as their own
  // code: each character's low byte is the file's byte (a Uint8Array keeps only that).
  function decode(s) {
    return Uint8Array.from(s, (c) => c.charCodeAt());
  }

  // Calls made while the wasm loads, if the page had no loader snippet.
  if (!w.footfall) {
    w.footfall = { q: [] };
    names.forEach((m) => {
      w.footfall[m] = (...args) => {
        w.footfall.q.push([Date.now(), m, args]);
      };
    });
  }

  function guard(fn) {
    return (...args) => {
      try {
        return fn(...args);
      } catch (e) {
        if (!warned) console.warn("footfall: internal error, call ignored", e);
        warned = true;
      }
    };
  }

  function storage() {
    try {
      return w.localStorage;
    } catch (e) {
      return null;
    }
  }

  // One queued call: [time, name, args, flush's resolve?], replayed at its time (and on its
  // page, for a call kept by an earlier page).
  function replay(call, page) {
    var fn = api[call[1]];
    if (!fn) return;
    guard(host.api._replayAt)(call[0]);
    if (page) guard(host.api._replayPage)(page.l);
    var result = fn.apply(null, call[2]);
    guard(host.api._replayAt)(NaN);
    if (call[3]) Promise.resolve(result).then(call[3], call[3]);
  }

  // Calls kept by earlier pages of this site that went before their SDK had started, replayed
  // once this page's SDK runs (their `init` is this page's own).
  function replayKept() {
    var s = storage();
    var kept = s && s.getItem(KEPT);
    if (!kept) return;
    s.removeItem(KEPT);
    JSON.parse(kept).forEach((page) => {
      page.q.forEach((call) => {
        if (call[1] !== "init" && call[1] !== "flush") replay(call, page);
      });
    });
  }

  // Compiles and starts the wasm from its bytes (synchronously: about 3 ms of the main thread).
  function start(bytes) {
    sdk.initSync(bytes, host);
    api = {};
    names.forEach((m) => (api[m] = guard(host.api[m])));
    // The endpoint defaults to the origin the script came from.
    var replayed = false;
    api.init = guard((options) => {
      host.api.init(options, origin);
      if (!replayed && (host.read(0) || sdk._on(23, 0))) {
        replayed = true;
        guard(replayKept)();
      }
    });
    var queued = (w.footfall && w.footfall.q) || [];
    w.footfall = api;
    if (script && script.dataset.key) api.init(script.dataset);
    queued.forEach((call) => replay(call));
  }

  // The page goes while the SDK has not started (the fallback's fetch still on its way): it
  // keeps its calls for the next load.
  function leaving() {
    var queued = (w.footfall && w.footfall.q) || [];
    if (!api && queued.length && keepable(queued)) guard(keep)(queued);
  }

  // Cookieless pages (`persistence: "memory"`) keep nothing.
  function keepable(queued) {
    var memory = !!script && script.dataset.persistence === "memory";
    queued.forEach((call) => {
      var o = call[1] === "init" && call[2][0];
      if (o && o.persistence) memory = o.persistence === "memory";
    });
    return !memory;
  }

  function keep(queued) {
    var s = storage();
    if (!s) return;
    var pages = JSON.parse(s.getItem(KEPT) || "[]");
    pages.push({
      // The page as the page room reads it for the SDK (URL, path, title, referrer).
      l: host.page(),
      // A call whose arguments cannot be written (a cycle) is left out; the SDK would drop it.
      q: queued.map((call) => {
        try {
          return JSON.parse(JSON.stringify(call.slice(0, 3)));
        } catch (e) {
          return [0, ""];
        }
      }),
    });
    s.setItem(KEPT, JSON.stringify(pages.slice(-10)));
    w.footfall.q = [];
  }

  w.addEventListener("pagehide", leaving);

  // Started at once, from the bytes in hand, before this script ends, so no page can go with
  // its calls still queued. Bytes that do not compile were read under another charset (a copy
  // of this file served as UTF-8, say): then the wasm file beside this script is fetched
  // instead, as before the bytes were embedded, and started as soon as it has arrived; a page
  // that goes before then keeps its calls for the next load.
  try {
    start(decode(wasm));
  } catch (e) {}
  if (!api) {
    fetch(new URL("footfall_bg.wasm", base))
      .then((r) => {
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.arrayBuffer();
      })
      .then(start)
      .catch((e) => {
        console.warn("footfall: not loaded; nothing tracked", e);
      });
  }
  // The build (`cargo xtask build`) replaces this name with a string of the wasm as it is, each
  // byte one byte of the file (only backslash, single quote, LF and CR escaped), so its gzip is
  // close to that of the wasm and the JS apart (closer with the bytes last). The file is ASCII
  // but for those bytes and served as x-user-defined, which reads each byte as one character.
})(window, FOOTFALL_WASM_BYTES);

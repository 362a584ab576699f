// The API room: the public API of product.md §1 over the wasm's exports. It turns the page's
// arguments into strings before they cross: strings stay strings (anything else becomes "",
// which the SDK refuses with a warning), properties become JSON text with the registered ones
// merged in, the options one list. `host` gives `warn(message)`, `read(what)` (the wasm's
// texts: 0 the anonymous, 1 the session, 2 the user ID, 3 the registered properties) and
// `flush()`.
function footfallApi(sdk, host) {
  var warn = host.warn;
  // The wasm's two exports (neither reads `this`).
  var record = sdk._record;
  var on = sdk._on;
  var registered = {};
  function text(v) {
    return typeof v === "string" ? v.trim() : "";
  }
  // A plain object as JSON text; "" for none (null or undefined) and, with a warning, for
  // anything else.
  function json(v) {
    if (v == null) return "";
    try {
      if (typeof v === "object" && !Array.isArray(v)) return JSON.stringify(v);
      warn("properties not a plain object; ignored");
    } catch (e) {
      warn("properties not serialisable (a cycle or BigInt?); ignored");
    }
    return "";
  }
  // An event's properties: the registered ones, overridden by the call's own.
  function merged(v) {
    var own = json(v);
    var none = true;
    for (var k in registered) none = false;
    return none ? own : json(own ? Object.assign({}, registered, v) : registered);
  }
  // The options as one list, in the order of `NAMES` in options.rs; "\u0001" for one not
  // given or of a type it does not take (the first five take strings only).
  var OPTIONS = ["key", "endpoint", "sessionScope", "persistence", "cookieDomain",
    "sessionTimeout", "maxSessionDuration", "endSessionOnHidden", "hiddenGrace", "autoPageviews",
    "trackEngagement", "batchSize", "flushInterval", "respectDnt"];
  function options(o, origin) {
    o = o && typeof o === "object" ? o : {};
    return OPTIONS.map((name, i) => {
      var v = o[name];
      if (name === "endpoint" && (!v || typeof v !== "string")) v = origin || location.origin;
      var t = typeof v;
      if (t === "string") return i < 5 ? v : v.trim();
      if (i < 5) return "\u0001";
      // A number's or a boolean's text (NaN or Infinity do not parse: the default then).
      return t === "number" ? String(Math.trunc(v)) : t === "boolean" ? String(v) : "\u0001";
    }).join("\n");
  }
  // All the registered properties now, to the wasm, which keeps them across page loads.
  function keep() {
    record(4, "", json(registered) || "{}");
  }
  return {
    // `origin`: the endpoint when the options give none (the page's origin when not given).
    init(o, origin) {
      record(8, "", options(o, origin));
      try {
        var r = JSON.parse(host.read(3));
        registered = r && typeof r === "object" && !Array.isArray(r) ? r : {};
      } catch (e) {
        registered = {};
      }
    },
    page(props) {
      record(0, "", merged(props));
    },
    track(name, props) {
      record(1, text(name), merged(props));
    },
    identify(userId, traits) {
      record(2, text(userId), json(traits));
    },
    setUserProperties(traits) {
      record(3, "", json(traits));
    },
    // Adds properties to every later event, kept across page loads.
    register(props) {
      if (!json(props)) return;
      Object.assign(registered, props);
      keep();
    },
    // Stops adding `key` to events.
    unregister(key) {
      if (typeof key !== "string") return warn("unregister needs a name (a string); ignored");
      delete registered[key];
      keep();
    },
    reset() {
      on(20, 0);
      registered = {};
    },
    optOut() {
      on(21, 0);
      registered = {};
    },
    optIn() {
      on(22, 0);
    },
    isOptedOut: () => on(23, 0),
    // "" (none) reads as undefined.
    getAnonymousId: () => host.read(0) || undefined,
    getSessionId: () => host.read(1) || undefined,
    getUserId: () => host.read(2) || undefined,
    flush: host.flush,
    // The next call was made at `ms` (a call kept while the SDK loaded); NaN: the calls of now.
    _replayAt: (ms) => on(8, ms),
    // The page a kept call was made on, as the page room's `page()` read it then.
    _replayPage: (line) => record(5, line, ""),
  };
}

// The JavaScript host of the wasm: everything the SDK asks of the browser. Only numbers and
// strings cross; the wasm reaches these functions as the global `footfall_host` (the wrapper
// sets it), and the answers come back through its exports `_answered` (a send's status and
// Retry-After), `_later` (work at the end of the task or after a timer), `_on` (the page's
// events) and `_locked` (Web Locks). No function here throws into the wasm.
// `host.api` is the public API of product.md §1 over the wasm's exports: it turns the page's
// arguments into strings (properties into JSON text, with the registered ones merged in).
// The script tag includes this file as it is; the npm package imports it (`xtask` adds the
// export).
function footfallHost(sdk) {
  var flushes = [];
  function call(fn, a, b) {
    try {
      return fn(a, b);
    } catch (e) {
      console.warn("footfall: internal error", e);
    }
  }
  function warn(msg) {
    console.warn("footfall: " + msg);
  }
  function absent(v) {
    return v === null ? undefined : v;
  }

  // Random bytes, drawn 64 words at a time (each call into crypto costs more than a word).
  var pool = new Uint32Array(64);
  var used = 64;
  function rnd() {
    if (used >= 64) {
      try {
        crypto.getRandomValues(pool);
      } catch (e) {
        for (var i = 0; i < 64; i++) pool[i] = Math.random() * 4294967296;
      }
      used = 0;
    }
    var x = pool[used];
    pool[used++] = 0;
    return x;
  }

  // Cookies. `document.cookie` is slow (a read right after a write costs Chromium about a
  // millisecond), so within one task they are read once and written once, at its end. No
  // other tab runs in between within a task, so what other tabs see is the same.
  var jar = null;
  function task() {
    if (!jar) {
      jar = { read: null, pending: {} };
      queueMicrotask(function () {
        var j = jar;
        jar = null;
        for (var k in j.pending) document.cookie = j.pending[k][1];
      });
    }
    return jar;
  }
  function findCookie(all, key) {
    var parts = all.split(";");
    for (var i = 0; i < parts.length; i++) {
      var kv = parts[i].replace(/^\s+/, "");
      if (kv.slice(0, key.length + 1) === key + "=") {
        try {
          return decodeURIComponent(kv.slice(key.length + 1));
        } catch (e) {
          return "";
        }
      }
    }
  }
  function probe(attrs) {
    document.cookie = "ff_probe=1; Path=/" + attrs;
    var ok = findCookie(document.cookie, "ff_probe") !== undefined;
    document.cookie = "ff_probe=; Path=/; Max-Age=0" + attrs;
    return ok;
  }
  // `example.com` before `a.example.com` (never the bare suffix): the widest domain on which a
  // cookie reads back. Host-only (empty) for IPs and single labels.
  function widestDomain(host, tail) {
    if (/^[\d.]*$/.test(host) || host.indexOf(":") >= 0 || host.indexOf(".") < 0) return "";
    var labels = host.split(".");
    for (var i = labels.length - 2; i >= 0; i--) {
      var attr = "; Domain=" + labels.slice(i).join(".");
      if (probe(attr + tail)) return attr;
    }
    return "";
  }
  // First-party cookies, 365 days, SameSite=Lax, Secure on https.
  function cookies(domain) {
    var tail = location.protocol === "https:" ? "; SameSite=Lax; Secure" : "; SameSite=Lax";
    var attr = domain && domain !== "auto" ? "; Domain=" + domain : widestDomain(location.hostname, tail);
    function write(key, value, age) {
      task().pending[key] = [
        age === "0" ? undefined : value,
        key + "=" + encodeURIComponent(value) + "; Path=/; Max-Age=" + age + attr + tail,
      ];
    }
    return {
      get: function (key) {
        var j = task();
        if (key in j.pending) return j.pending[key][0];
        if (j.read === null) j.read = document.cookie;
        return findCookie(j.read, key);
      },
      set: function (key, value) {
        write(key, value, "31536000");
      },
      del: function (key) {
        write(key, "", "0");
      },
    };
  }

  // localStorage and sessionStorage, when the browser lets the page use them (probed once a
  // page: some hand out a storage that throws on every write), and memory.
  var webs = {};
  function web(name) {
    if (!(name in webs)) {
      try {
        var s = window[name];
        s.setItem("ff_probe", "1");
        s.removeItem("ff_probe");
        webs[name] = s;
      } catch (e) {
        webs[name] = null;
      }
    }
    return webs[name];
  }
  function webStore(s) {
    return {
      get: function (key) {
        return absent(s.getItem(key));
      },
      set: function (key, value) {
        try {
          s.setItem(key, value);
        } catch (e) {}
      },
      del: function (key) {
        s.removeItem(key);
      },
    };
  }
  // Nothing survives the page but the opt-out, kept in localStorage when it can be.
  function memory() {
    var m = Object.create(null);
    var local = web("localStorage");
    return {
      get: function (key) {
        if (key === "ff_optout") return local ? absent(local.getItem(key)) : undefined;
        return m[key];
      },
      set: function (key, value) {
        if (key !== "ff_optout") m[key] = value;
        else if (local) webStore(local).set(key, value);
      },
      del: function (key) {
        if (key !== "ff_optout") delete m[key];
        else if (local) local.removeItem(key);
      },
    };
  }
  var stores = [];
  // `which`: 0 cookies, else localStorage, else memory; 1 localStorage, else memory; 2 memory;
  // 3 sessionStorage, else memory; 4 localStorage or nothing (-1); 5 sessionStorage or nothing.
  function open(which, domain) {
    var store = null;
    var ok = false;
    try {
      ok = which === 0 && probe("; SameSite=Lax");
    } catch (e) {}
    if (ok) store = cookies(domain);
    else if (which === 0 || which === 1 || which === 4) store = web("localStorage");
    else if (which === 3 || which === 5) store = web("sessionStorage");
    if (store && !ok) store = webStore(store);
    if (!store && which < 4) store = memory();
    if (!store) return -1;
    stores.push(store);
    return stores.length - 1;
  }
  function store(h, fn, key, value) {
    var s = stores[h];
    if (!s) return;
    try {
      return s[fn](key, value);
    } catch (e) {}
  }

  // The page: the URL and title read each time, the path when the URL changed, the referrer
  // once. One line each.
  var shown = { u: "", p: "", r: null };
  function page() {
    var href = location.href;
    if (href !== shown.u || !href) {
      shown.p = location.pathname;
      if (shown.r === null) shown.r = document.referrer;
      shown.u = href;
    }
    return href + "\n" + shown.p + "\n" + document.title + "\n" + shown.r;
  }
  // Screen, viewport, language and time zone, read once; the viewport again after `resize`.
  var fixed = null;
  var viewport = null;
  function dims(o, w, h) {
    return Math.max(0, (o && o[w]) | 0) + "x" + Math.max(0, (o && o[h]) | 0);
  }
  function context() {
    if (!fixed) {
      var tz = "";
      try {
        tz = Intl.DateTimeFormat().resolvedOptions().timeZone || "";
      } catch (e) {}
      fixed = [window.screen ? dims(screen, "width", "height") : "", navigator.language || "", tz];
    }
    if (viewport === null) viewport = dims(window, "innerWidth", "innerHeight");
    return fixed[0] + "\n" + viewport + "\n" + fixed[1] + "\n" + fixed[2];
  }

  var host = {
    now: Date.now,
    rnd: rnd,
    warn: warn,
    open: open,
    sget: function (h, key) {
      return store(h, "get", key);
    },
    sset: function (h, key, value) {
      store(h, "set", key, value);
    },
    sdel: function (h, key) {
      store(h, "del", key);
    },
    // The keys of localStorage that start with `prefix`, one a line.
    keys: function (prefix) {
      var s = web("localStorage");
      var out = [];
      for (var i = 0; s && i < s.length; i++) {
        var k = s.key(i);
        if (k && k.slice(0, prefix.length) === prefix) out.push(k);
      }
      return out.join("\n");
    },
    page: page,
    context: context,
    // Bits: 1 online, 2 hidden, 4 Do Not Track or Global Privacy Control.
    facts: function () {
      var n = navigator;
      return (
        (n.onLine === true ? 1 : 0) |
        (document.visibilityState === "hidden" ? 2 : 0) |
        (n.doNotTrack === "1" || n.globalPrivacyControl === true ? 4 : 0)
      );
    },
    // When the page's navigation started (0 when unknown).
    t0: function () {
      return (window.performance && performance.timeOrigin) || 0;
    },
    // POSTs `body` as text/plain (no CORS preflight). No `keepalive`: the browser counts
    // every keepalive body in flight against one 64 KB budget, which the beacons of a hidden
    // page need; what a page takes with it is in the outbox and leaves by beacon.
    post: function (url, body) {
      fetch(url, { method: "POST", body: body }).then(
        function (r) {
          call(sdk._answered, r.status, Number(r.headers.get("retry-after")) || 0);
        },
        function () {
          call(sdk._answered, 0, 0);
        },
      );
    },
    beacon: function (url, body) {
      try {
        return navigator.sendBeacon(url, body) === true;
      } catch (e) {
        return false;
      }
    },
    later: function (what) {
      queueMicrotask(function () {
        call(sdk._later, what);
      });
    },
    timer: function (what, ms) {
      setTimeout(function () {
        call(sdk._later, what);
      }, ms);
    },
    // The page's events, for the life of the page, as numbers: see `_on` in api.rs.
    listen: function (withHistory) {
      function on(event, target, name) {
        target.addEventListener(name, function (e) {
          call(sdk._on, event, e.persisted ? 1 : 0);
        });
      }
      on(0, document, "visibilitychange");
      on(1, window, "online");
      on(2, window, "pagehide");
      on(3, window, "pageshow");
      ["pointerdown", "keydown", "scroll", "touchstart"].forEach(function (name) {
        on(4, window, name);
      });
      window.addEventListener("resize", function () {
        viewport = null;
      });
      if (!withHistory) return;
      on(5, window, "popstate");
      // The page's pushState/replaceState do what they did, return what they returned and
      // throw what they threw (then the SDK hears nothing).
      [["pushState", 5], ["replaceState", 6]].forEach(function (m) {
        var original = history[m[0]];
        if (typeof original !== "function") return;
        history[m[0]] = function (state, title, url) {
          var r = original.call(history, state, title, url);
          call(sdk._on, m[1], 0);
          return r;
        };
      });
    },
    // Web Lock `name` if free: `_locked(id, 1)` while held (with `hold`, for the page's
    // life), `_locked(id, 0)` if taken; false without Web Locks. The page going (a back/
    // forward cache entry, in WebKit) rejects a held lock's request: that is expected.
    lock: function (name, hold, id) {
      var locks = navigator.locks;
      if (!locks || typeof locks.request !== "function") return false;
      try {
        locks.request(name, { ifAvailable: true }, function (lock) {
          call(sdk._locked, id, lock ? 1 : 0);
          if (hold && lock) return new Promise(function () {});
        }).catch(function () {});
        return true;
      } catch (e) {
        return false;
      }
    },
    flushed: function (count) {
      flushes.splice(0, count).forEach(function (done) {
        done();
      });
    },
    // `flush()`: resolves once the SDK says the events queued at the call were answered.
    flush: function () {
      return new Promise(function (done) {
        flushes.push(done);
        if (!call(sdk._flush)) host.flushed(flushes.length);
      });
    },
  };

  // The public API. Strings stay strings (anything else becomes "", which the SDK refuses
  // with a warning); properties become JSON text.
  var registered = {};
  function text(v) {
    return typeof v === "string" ? v.trim() : "";
  }
  // A plain object as JSON text, "" for none (null or undefined); false, with a warning, for
  // anything else.
  function json(v) {
    if (v == null) return "";
    if (typeof v !== "object" || Array.isArray(v)) {
      warn("properties must be a plain object; ignored them");
      return false;
    }
    try {
      return JSON.stringify(v);
    } catch (e) {
      warn("properties could not be serialised (a cycle or a BigInt?); ignored them");
      return false;
    }
  }
  // An event's properties: the registered ones, overridden by the call's own.
  function merged(v) {
    var own = json(v);
    var none = true;
    for (var k in registered) none = false;
    if (none) return own || "";
    return json(own ? Object.assign({}, registered, v) : registered) || "";
  }
  // The options as one list, in the order of `NAMES` in options.rs; "\u0001" for one not
  // given or of a type it does not take (the first five take strings only).
  var OPTIONS = ["key", "endpoint", "sessionScope", "persistence", "cookieDomain",
    "sessionTimeout", "maxSessionDuration", "endSessionOnHidden", "hiddenGrace", "autoPageviews",
    "trackEngagement", "batchSize", "flushInterval", "respectDnt"];
  function options(o) {
    o = o && typeof o === "object" ? o : {};
    return OPTIONS.map(function (name, i) {
      var v = o[name];
      if (name === "endpoint" && (!v || typeof v !== "string")) v = location.origin;
      var t = typeof v;
      if (t === "string") return i < 5 ? v : v.trim();
      if (i < 5) return "\u0001";
      if (t === "number") return isFinite(v) ? String(Math.trunc(v)) : "\u0001";
      return t === "boolean" ? String(v) : "\u0001";
    }).join("\n");
  }
  function resetRegistered() {
    registered = {};
  }
  host.api = {
    init: function (o) {
      sdk.init(options(o));
      try {
        var r = JSON.parse(sdk._get(3));
        registered = r && typeof r === "object" && !Array.isArray(r) ? r : {};
      } catch (e) {
        registered = {};
      }
    },
    page: function (props) {
      sdk._record(0, "", merged(props));
    },
    track: function (name, props) {
      sdk._record(1, text(name), merged(props));
    },
    identify: function (userId, traits) {
      sdk._record(2, text(userId), json(traits) || "");
    },
    setUserProperties: function (traits) {
      sdk._record(3, "", json(traits) || "");
    },
    // Adds properties to every later event, kept across page loads.
    register: function (props) {
      if (!json(props)) return;
      Object.assign(registered, props);
      sdk._register(json(registered) || "{}");
    },
    // Stops adding `key` to events.
    unregister: function (key) {
      if (typeof key !== "string") return warn("unregister needs a property name (a string); ignored");
      delete registered[key];
      sdk._register(json(registered) || "{}");
    },
    reset: function () {
      sdk.reset();
      resetRegistered();
    },
    optOut: function () {
      sdk.optOut();
      resetRegistered();
    },
    optIn: sdk.optIn,
    isOptedOut: sdk.isOptedOut,
    // "" (none) reads as undefined.
    getAnonymousId: function () {
      return sdk._get(0) || undefined;
    },
    getSessionId: function () {
      return sdk._get(1) || undefined;
    },
    getUserId: function () {
      return sdk._get(2) || undefined;
    },
    flush: host.flush,
    _hide: sdk._hide,
    _replayAt: sdk._replayAt,
    // The page a kept call was made on: `{u: url, p: path, t: title, r: referrer}`.
    _replayPage: function (p) {
      sdk._replayPage([p.u, p.p, p.t, p.r].map(text).join("\n"));
    },
  };
  return host;
}

// The JavaScript host of the wasm: what the SDK asks of the browser that needs a callback or
// a Promise. Only numbers and strings cross; the answers come back through the wasm's exports
// `_answered` (a send's status and Retry-After), `_later` (work at the end of the task or
// after a timer) and `_on` (the page's events).
// The script tag includes this file as it is; the npm package imports it (`xtask` adds the
// export). The wasm reaches it as the global `footfall_host`, which the wrapper sets.
function footfallHost(sdk) {
  var flushes = [];
  function call(fn, a, b) {
    try {
      fn(a, b);
    } catch (e) {
      console.warn("footfall: internal error", e);
    }
  }
  var host = {
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
      on(7, window, "resize");
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
        var waits = false;
        try {
          waits = sdk._flush();
        } catch (e) {
          console.warn("footfall: internal error", e);
        }
        if (!waits) host.flushed(flushes.length);
      });
    },
  };
  return host;
}

// The locks room: Web Locks, which the SDK uses so that one tab of a site sends the shared
// outbox. `call(name, a, b, c)` calls a wasm export (guarded by host.js).
function footfallLocks(call) {
  return {
    // Web Lock `name` if free: `_record(6, name, "")` while held (with `hold`, for the page's
    // life), `_record(7, name, "")` if taken; false without Web Locks (the request throws). The
    // page going (a back/forward cache entry, in WebKit) rejects a held lock's request: that is
    // expected.
    lock(name, hold) {
      try {
        navigator.locks
          .request(name, { ifAvailable: true }, (lock) => {
            call("_record", lock ? 6 : 7, name, "");
            if (hold && lock) return new Promise(() => {});
          })
          .catch(() => {});
        return true;
      } catch (e) {
        return false;
      }
    },
  };
}

// The locks room: Web Locks, which the SDK uses so that one tab of a site sends the shared
// outbox. `call(name, a, b)` calls a wasm export (guarded by host.js).
function footfallLocks(call) {
  return {
    // Web Lock `name` if free: `_locked(name, 1)` while held (with `hold`, for the page's
    // life), `_locked(name, 0)` if taken; false without Web Locks. The page going (a back/
    // forward cache entry, in WebKit) rejects a held lock's request: that is expected.
    lock(name, hold) {
      var locks = navigator.locks;
      if (!locks || typeof locks.request !== "function") return false;
      try {
        locks
          .request(name, { ifAvailable: true }, (lock) => {
            call("_locked", name, lock ? 1 : 0);
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

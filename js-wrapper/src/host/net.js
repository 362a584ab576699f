// The net room: the SDK's requests to the collector. `post` answers through the wasm's
// `_on(1000 + status, retryAfter)` (status 0 when the request failed, retryAfter in seconds, 0
// when the answer had none); `beacon` says whether the browser took the body. `call(name, a,
// b)` calls the wasm's export `name` (guarded by host.js). No function here throws.
function footfallNet(call) {
  return {
    // POSTs `body` as text/plain (no CORS preflight). No `keepalive`: the browser counts
    // every keepalive body in flight against one 64 KB budget, which the beacons of a hidden
    // page need; what a page takes with it is in the outbox and leaves by beacon.
    post(url, body) {
      fetch(url, { method: "POST", body: body }).then(
        (r) => call("_on", 1000 + r.status, Number(r.headers.get("retry-after")) || 0),
        () => call("_on", 1000, 0),
      );
    },
    beacon(url, body) {
      try {
        return navigator.sendBeacon(url, body) === true;
      } catch (e) {
        return false;
      }
    },
  };
}

// The tasks room: time (and timestamps as text), randomness, work for later and `flush()`'s Promises. `later` runs
// the wasm's `_on(7, what)` at the end of the task, `timer` after `ms`; `flush()` resolves once
// the wasm says (`flushed(count)`) that the events queued at the call were answered. `call(name,
// a, b)` calls a wasm export (guarded by host.js).
function footfallTasks(call) {
  var flushes = [];
  // Random words, drawn 64 at a time (each call into crypto costs more than a word).
  var pool = new Uint32Array(64);
  var used = 64;
  var tasks = {
    now: Date.now,
    // A timestamp as the wire format writes it (RFC 3339, UTC, milliseconds), for the wasm:
    // never throws (no date outside years 1970 to 9999 reaches it).
    iso: (ms) => new Date(Math.min(Math.max(ms || 0, 0), 253402300799999)).toISOString(),
    rnd() {
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
    },
    later(what) {
      queueMicrotask(() => call("_on", 7, what));
    },
    timer(what, ms) {
      setTimeout(() => call("_on", 7, what), ms);
    },
    flushed(count) {
      flushes.splice(0, count).forEach((done) => done());
    },
    flush() {
      return new Promise((done) => {
        flushes.push(done);
        if (!call("_on", 26, 0)) tasks.flushed(flushes.length);
      });
    },
  };
  return tasks;
}

// The tasks room: time, randomness, work for later and `flush()`'s Promises. `later` runs
// the wasm's `_later(what)` at the end of the task, `timer` after `ms`; `flush()` resolves once
// the wasm says (`flushed(count)`) that the events queued at the call were answered. `call(name,
// a, b)` calls a wasm export (guarded by host.js).
function footfallTasks(call) {
  var flushes = [];
  // Random words, drawn 64 at a time (each call into crypto costs more than a word).
  var pool = new Uint32Array(64);
  var used = 64;
  var tasks = {
    now: Date.now,
    rnd: function () {
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
    later: function (what) {
      queueMicrotask(function () {
        call("_later", what);
      });
    },
    timer: function (what, ms) {
      setTimeout(function () {
        call("_later", what);
      }, ms);
    },
    flushed: function (count) {
      flushes.splice(0, count).forEach(function (done) {
        done();
      });
    },
    flush: function () {
      return new Promise(function (done) {
        flushes.push(done);
        if (!call("_flush")) tasks.flushed(flushes.length);
      });
    },
  };
  return tasks;
}

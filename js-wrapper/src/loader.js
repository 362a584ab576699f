// The loader snippet (product.md §1): paste it before the SDK's script tag. It defines
// window.footfall as a queue, so calls made before the wasm has loaded are kept, with the
// time they were made, and replayed in order once the SDK is up.
(function (w) {
  if (w.footfall) return;
  var f = (w.footfall = { q: [] });
  "init page track identify setUserProperties register unregister reset flush optOut optIn"
    .split(" ")
    .forEach(function (m) {
      f[m] = function () {
        var args = [].slice.call(arguments);
        if (m !== "flush") return void f.q.push([Date.now(), m, args]);
        return new Promise(function (done) { f.q.push([Date.now(), m, args, done]); });
      };
    });
})(window);

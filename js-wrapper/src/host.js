// The JavaScript host of the wasm: everything the SDK asks of the browser, put together from
// its rooms in `host/`, one per browser facility: cookie.js, storage.js, net.js, page.js
// (page, context and history), locks.js, tasks.js (time, randomness, later work, flush) and
// api.js (the public API). Only numbers and strings cross; the wasm's glue reaches these functions as
// `footfall_host` (the npm package's wrapper sets that global; the script tag hands the host
// to its glue's `initSync`), and the answers come back through its
// exports `_on` and `_record`, each called through `call`,
// which keeps the wasm's failures from throwing into the page. `host.read(what)` reads one of
// the SDK's texts (`_on(30 + what)`, answered through `got`). `host.api` is the public API.
// The build (`cargo xtask build`) puts the rooms before this file: the script tag includes
// them as they are; the npm package's host.js exports `footfallHost`.
function footfallHost(sdk) {
  function call(name, a, b, c) {
    try {
      return sdk[name](a, b, c);
    } catch (e) {
      console.warn("footfall: internal error, call ignored", e);
    }
  }
  var text = "";
  var host = Object.assign(
    {
      warn(msg) {
        console.warn("footfall: " + msg);
      },
      got(t) {
        text = t;
      },
      // The texts the wasm reads, one import for all (`Read` in browser.rs): 0 the page, 1 the
      // context, 2 localStorage's keys starting with `s`, 3 the timestamp of `n`, 4 the value
      // of `s` in the storage of handle `n` ("" when missing): always a string.
      text: (what, n, s) =>
        what > 3 ? host.sget(n, s) || ""
        : what > 2 ? host.iso(n)
        : what > 1 ? host.keys(s)
        : what ? host.context()
        : host.page(),
      // "" before `init`, or when the wasm failed.
      read(what) {
        text = "";
        call("_on", 30 + what, 0);
        return text;
      },
    },
    footfallTasks(call),
    footfallStorage(footfallCookies()),
    footfallNet(call),
    footfallPage(call),
    footfallLocks(call),
  );
  host.api = footfallApi(sdk, host);
  return host;
}

// The storage room: the stores the wasm reads and writes through numeric handles (`open`,
// `sget`, `sset`, `sdel`) and the keys of localStorage by prefix (`keys`). localStorage and
// sessionStorage are used when the browser lets the page use them (probed once a page: some
// hand out a storage that throws on every write); else memory, which keeps nothing past the
// page but the opt-out (in localStorage when it can be). Cookies come from the cookie room
// (`footfallCookies()`, passed in). Every store answers a web storage's `getItem`, `setItem` and
// `removeItem` (none reads as null or undefined, which the glue takes alike), so localStorage and
// sessionStorage are stores as they are. No function here throws.
function footfallStorage(cookies) {
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
  function memory() {
    var m = Object.create(null);
    var local = web("localStorage");
    return {
      getItem: (key) => (key === "ff_optout" ? local && local.getItem(key) : m[key]),
      setItem(key, value) {
        if (key !== "ff_optout") m[key] = value;
        else if (local) local.setItem(key, value);
      },
      removeItem(key) {
        if (key !== "ff_optout") delete m[key];
        else if (local) local.removeItem(key);
      },
    };
  }
  var stores = [];
  function store(h, fn, key, value) {
    var s = stores[h];
    if (!s) return;
    try {
      return s[fn](key, value);
    } catch (e) {}
  }
  return {
    // `which`: 0 cookies, else localStorage, else memory; 1 localStorage, else memory; 2 memory;
    // 3 sessionStorage, else memory; 4 localStorage or nothing (-1); 5 sessionStorage or
    // nothing. `domain`: the cookies' domain ("" or "auto": the widest that works).
    open(which, domain) {
      var s = null;
      try {
        if (!which && cookies.probe("; SameSite=Lax")) s = cookies.jar(domain);
      } catch (e) {}
      if (!s && which !== 2) s = web(which === 3 || which === 5 ? "sessionStorage" : "localStorage");
      if (!s && which < 4) s = memory();
      return s ? stores.push(s) - 1 : -1;
    },
    sget(h, key) {
      return store(h, "getItem", key);
    },
    sset(h, key, value) {
      store(h, "setItem", key, value);
    },
    sdel(h, key) {
      store(h, "removeItem", key);
    },
    // The keys of localStorage that start with `prefix`, one a line.
    keys(prefix) {
      var s = web("localStorage");
      var out = [];
      for (var i = 0; s && i < s.length; i++) {
        var k = s.key(i);
        if (k && k.slice(0, prefix.length) === prefix) out.push(k);
      }
      return out.join("\n");
    },
  };
}

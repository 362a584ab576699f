// The cookie room: first-party cookies, 365 days, SameSite=Lax, Secure on https, on the widest
// domain where a cookie reads back (or the one given). `document.cookie` is slow (a read right
// after a write costs Chromium about a millisecond), so within one task they are read once and
// written once, at its end; no other tab runs in between within a task, so what other tabs see
// is the same. `footfallCookies()` answers `{ probe(attrs), jar(domain) }`: `probe` tells
// whether a cookie with those attributes reads back, `jar` is the store that `open(0)` of the
// storage room hands out (`getItem`, `setItem`, `removeItem`, as a web storage has).
function footfallCookies() {
  // This task's writes by key ([value read back, cookie string]; null outside a task) and its
  // read of `document.cookie`, by key (null until read).
  var writes = null;
  var read = null;
  function task() {
    if (!writes) {
      writes = {};
      read = null;
      queueMicrotask(() => {
        var done = writes;
        writes = null;
        for (var k in done) document.cookie = done[k][1];
      });
    }
    return writes;
  }
  // The cookies of `all` (`document.cookie`) by name, the first of a name kept; a value that
  // does not decode reads "".
  function parse(all) {
    var found = Object.create(null);
    all.split(";").forEach((kv) => {
      kv = kv.replace(/^\s+/, "");
      var at = kv.indexOf("=");
      var key = kv.slice(0, at);
      if (at < 0 || key in found) return;
      try {
        found[key] = decodeURIComponent(kv.slice(at + 1));
      } catch (e) {
        found[key] = "";
      }
    });
    return found;
  }
  function probe(attrs) {
    document.cookie = "ff_probe=1; Path=/" + attrs;
    var ok = "ff_probe" in parse(document.cookie);
    document.cookie = "ff_probe=; Path=/; Max-Age=0" + attrs;
    return ok;
  }
  // `example.com` before `a.example.com` (never the bare suffix): the widest domain on which a
  // cookie reads back. Host-only (empty) for IPs and single labels.
  function widest(host, tail) {
    if (/^[\d.]*$|:|^[^.]*$/.test(host)) return "";
    var labels = host.split(".");
    for (var i = labels.length - 2; i >= 0; i--) {
      var attr = "; Domain=" + labels.slice(i).join(".");
      if (probe(attr + tail)) return attr;
    }
    return "";
  }
  return {
    probe: probe,
    jar(domain) {
      var tail = location.protocol === "https:" ? "; SameSite=Lax; Secure" : "; SameSite=Lax";
      var attr = domain && domain !== "auto" ? "; Domain=" + domain : widest(location.hostname, tail);
      function write(key, value, age) {
        task()[key] = [
          age === "0" ? undefined : value,
          key + "=" + encodeURIComponent(value) + "; Path=/; Max-Age=" + age + attr + tail,
        ];
      }
      return {
        getItem(key) {
          var w = task();
          if (key in w) return w[key][0];
          if (read === null) read = parse(document.cookie);
          return read[key];
        },
        setItem(key, value) {
          write(key, value, "31536000");
        },
        removeItem(key) {
          write(key, "", "0");
        },
      };
    },
  };
}

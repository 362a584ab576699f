// The Footfall dashboard: the three views of the query API in a browser, with charts (uPlot,
// bundled at build time). No framework: a small `h()` to build elements and a hash router.
"use strict";
(() => {
  const main = document.getElementById("main");
  // Signed in by an HttpOnly cookie (POST /api/v1/session), which no script in the page can
  // read; the page only knows who it is signed in as. Older dashboards kept the token here.
  const OLD_TOKEN_KEY = "footfall_token";
  let who = null;
  const cache = {};

  // ---- helpers ----
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v == null || v === false) continue;
      if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else if (k === "value") el.value = v;
      else el.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children.flat(Infinity)) {
      if (c != null && c !== false) el.append(c instanceof Node ? c : String(c));
    }
    return el;
  }
  const fmt = (n) => (typeof n === "number" ? n.toLocaleString("en-US", { maximumFractionDigits: 2 }) : n);
  const seconds = (s) => (s >= 3600 ? `${(s / 3600).toFixed(1)} h` : s >= 60 ? `${(s / 60).toFixed(1)} min` : `${s.toFixed(1)} s`);
  // Dates as the viewer reads them, in their own time zone (or a view's `tz=`).
  const viewerZone = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  const STYLES = {
    full: { dateStyle: "medium", timeStyle: "short" },
    day: { weekday: "short", day: "numeric", month: "short", year: "numeric" },
    hour: { day: "numeric", month: "short", hour: "2-digit", minute: "2-digit" },
    short: { day: "numeric", month: "short" },
    clock: { hour: "2-digit", minute: "2-digit", hourCycle: "h23" },
    time: { hour: "2-digit", minute: "2-digit", second: "2-digit" },
  };
  const when = (t, tz, style = "full") => (t == null ? "—" : new Date(t).toLocaleString(undefined, { ...STYLES[style], timeZone: tz || viewerZone }));
  const plural = (n, one, many = `${one}s`) => `${fmt(n ?? 0)} ${n === 1 ? one : many}`;
  // Properties as a key/value list, never raw JSON; a dash when there are none.
  const propList = (obj) => {
    const entries = Object.entries(obj || {});
    return entries.length
      ? h("dl", { class: "kv" }, entries.map(([k, v]) => [h("dt", {}, k), h("dd", {}, valueText(v))]))
      : h("span", { class: "muted" }, "—");
  };
  const valueText = (v) => (v == null ? "—" : typeof v === "object" ? JSON.stringify(v) : String(v));
  // The calendar day (YYYY-MM-DD) of instant `ms` in `tz`, and whole days added to one.
  const dayIn = (ms, tz) => new Intl.DateTimeFormat("en-CA", { timeZone: tz, year: "numeric", month: "2-digit", day: "2-digit" }).format(ms);
  const addDays = (day, n) => new Date(Date.parse(`${day}T00:00:00Z`) + n * 86400e3).toISOString().slice(0, 10);
  // Minutes `tz` is ahead of UTC at instant `ms`.
  function zoneOffset(ms, tz) {
    const p = Object.fromEntries(new Intl.DateTimeFormat("en-US", { timeZone: tz, hourCycle: "h23", year: "numeric", month: "numeric", day: "numeric", hour: "numeric", minute: "numeric", second: "numeric" })
      .formatToParts(ms).map((x) => [x.type, x.value]));
    return (Date.UTC(p.year, p.month - 1, p.day, p.hour, p.minute, p.second) - Math.floor(ms / 1000) * 1000) / 60e3;
  }
  // The instant (RFC 3339, UTC) a day starts in `tz`: what `from`/`to` of a custom range send.
  function zonedMidnight(day, tz) {
    const utc = Date.parse(`${day}T00:00:00Z`);
    let t = utc - zoneOffset(utc, tz) * 60e3;
    t = utc - zoneOffset(t, tz) * 60e3;
    return new Date(t).toISOString();
  }

  // What an empty answer suggests: the demo shop only where the collector has a `demo` site.
  function emptyHint() {
    return cache.demo
      ? "Nothing matches yet. Open the demo shop (/demo/) and click around, or widen the range."
      : "Nothing matches yet. Widen the range or remove a filter; events appear here seconds after a site sends them.";
  }
  async function hasDemoSite() {
    if (cache.demo === undefined) {
      try {
        await api("/api/v1/events?last=1h&site=demo", { bare: true });
        cache.demo = true;
      } catch (e) {
        cache.demo = false;
      }
    }
    return cache.demo;
  }

  async function api(path, opts = {}) {
    path = withSite(path, opts);
    const headers = {};
    if (opts.body) headers["content-type"] = "application/json";
    const res = await fetch(path, { ...opts, headers: { ...headers, ...(opts.headers || {}) } });
    if (res.status === 401 && !opts.public) {
      who = null;
      signIn("The sign-in has ended or the token was revoked. Sign in again.");
      throw new Error("unauthorized");
    }
    const body = res.status === 204 ? null : await res.json();
    if (!res.ok) throw Object.assign(new Error(body?.error?.message || res.statusText), { code: body?.error?.code });
    return body;
  }

  // The site picker's choice (`site=` in the view's URL) goes with every query the views make,
  // unless the query names its sites itself.
  function withSite(path, opts) {
    if (opts.public || opts.bare || opts.method || !path.startsWith("/api/v1/") || /^\/api\/v1\/(reports|shared|tokens)/.test(path)) return path;
    const sites = route().params.getAll("site");
    const [bare, query] = path.split("?");
    const q = new URLSearchParams(query || "");
    if (!sites.length || q.has("site")) return path;
    sites.forEach((x) => q.append("site", x));
    return `${bare}?${q}`;
  }

  function route() {
    const [path, query] = location.hash.slice(1).split("?");
    return { parts: (path || "insights").split("/").map(decodeURIComponent), params: new URLSearchParams(query || "") };
  }
  function go(view, params) {
    location.hash = `${view}${params && [...params].length ? `?${params}` : ""}`;
  }
  // Views leave out what does not apply with `null`: never shown (as "null").
  function show(...nodes) {
    main.replaceChildren(...nodes.flat(Infinity).filter((n) => n != null && n !== false));
  }
  function loading(what) {
    show(h("p", { class: "muted" }, `Loading ${what}…`));
  }
  function failed(e) {
    if (e.message !== "unauthorized") show(h("p", { class: "error" }, `Could not load: ${e.message}`));
  }
  function select(name, label, options, value, onchange) {
    return h("label", {}, label, h("select", { name, onchange: (e) => onchange(e.target.value) },
      options.map(([v, text]) => h("option", { value: v, selected: v === value }, text))));
  }

  // Bots are left out of every answer unless asked for: this switch asks (`bots=include`) and
  // keeps the choice in the view's URL, so saved reports and links keep it too.
  function botsSwitch(view, params) {
    return h("label", { class: "switch" }, h("input", {
      type: "checkbox", name: "bots", checked: params.get("bots") === "include",
      onchange: (e) => {
        const p = new URLSearchParams(params);
        if (e.target.checked) p.set("bots", "include"); else p.delete("bots");
        p.delete("cursor");
        go(view, p);
      },
    }), " Include bots");
  }

  // A person's page, keeping the view's `bots=` so a bot's page opens from a list with bots.
  function userHref(id, params) {
    const bots = params.get("bots");
    return `#user/${encodeURIComponent(id)}${bots ? `?bots=${encodeURIComponent(bots)}` : ""}`;
  }

  // ---- sign in ----
  function signIn(message) {
    document.getElementById("signout").hidden = true;
    const input = h("input", { type: "password", name: "token", placeholder: "admin or API token", size: 40, autocomplete: "off" });
    show(h("div", { class: "card" },
      h("h2", {}, "Sign in"),
      h("p", { class: "muted" }, "Paste the admin token (printed at first start, kept in ", h("code", {}, "DATA_DIR/admin-token"), ") or an API token."),
      message ? h("p", { class: "error" }, message) : null,
      h("form", {
        onsubmit: async (e) => {
          e.preventDefault();
          try {
            who = await api("/api/v1/session", { method: "POST", body: JSON.stringify({ token: input.value.trim() }), public: true });
            render();
          } catch (err) {
            signIn(err.message === "missing or wrong bearer token" ? "The token was refused." : err.message);
          }
        },
      }, input, " ", h("button", { class: "primary", type: "submit" }, "Sign in"))));
  }

  // ---- chart ----
  const COUNT_STEPS = [1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1e3, 2e3, 2500, 5e3, 1e4, 2e4, 25e3, 5e4, 1e5, 2e5, 25e4, 5e5, 1e6, 1e7, 1e8];
  // Ticks on the buckets themselves (a daily chart ticks at midnight, not 8am/4pm), in the query's
  // time zone, with half a bucket of room at both ends so the newest point is not clipped.
  function chart(answer, params) {
    const box = h("div", { class: "chart" });
    const series = answer.series || [];
    const points = series[0]?.points || [];
    if (!points.length) return box;
    const tz = params?.get("tz") || answer.tz || viewerZone;
    const xs = points.map((p) => Date.parse(p.t) / 1000);
    const step = xs.length > 1 ? xs[1] - xs[0] : 3600;
    const hourly = step < 86400;
    const data = [xs, ...series.map((s) => s.points.map((p) => p.value))];
    const colours = ["#2f6fde", "#e0672f", "#2fa66b", "#9b3fd1", "#c9a227", "#d13f6e", "#3fb5c9", "#7a7a7a"];
    const ink = getComputedStyle(document.body).getPropertyValue("--muted").trim() || "#6b7385";
    const grid = { stroke: getComputedStyle(document.body).getPropertyValue("--line").trim() || "#e3e6ec", width: 1 };
    // An hour's tick is its clock time, midnight's the day; a day's tick is the day.
    const tick = (ms) => {
      if (!hourly) return when(ms, tz, "short");
      const clock = when(ms, tz, "clock");
      return clock === "00:00" ? when(ms, tz, "short") : clock;
    };
    requestAnimationFrame(() => {
      const width = Math.max(240, box.clientWidth || (main.clientWidth || 900) - 40);
      const every = Math.max(1, Math.ceil(xs.length / Math.max(2, Math.floor(width / (hourly ? 60 : 90)))));
      new uPlot({
        width,
        height: 260,
        tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), tz),
        scales: { x: { time: true, range: () => [xs[0] - step / 2, xs[xs.length - 1] + step / 2] } },
        series: [{ value: (u, v) => (v == null ? "" : when(v * 1000, tz, hourly ? "hour" : "day")) },
          ...series.map((s, i) => ({ label: s.key == null ? answer.metric : String(s.key), stroke: colours[i % colours.length], width: 2 }))],
        axes: [
          { stroke: ink, grid, splits: () => xs.filter((_, i) => i % every === 0), values: (u, vals) => vals.map((v) => tick(v * 1000)) },
          { stroke: ink, grid, incrs: COUNT_STEPS, values: (u, vals) => vals.map(fmt) },
        ],
      }, data, box);
    });
    return box;
  }

  async function options() {
    const key = `options:${route().params.getAll("site")}`;
    if (!cache[key]) {
      const [events, props] = await Promise.all([api("/api/v1/events?last=90d"), api("/api/v1/properties?last=90d"), hasDemoSite()]);
      cache[key] = {
        events: events.events.map((e) => e.name),
        fields: [...props.columns, ...props.event.map((k) => `event.${k.key}`), ...props.user.map((k) => `user.${k.key}`)],
      };
    }
    return cache[key];
  }

  async function download(path, params) {
    const p = new URLSearchParams(params);
    p.set("format", "csv");
    const res = await fetch(`${path}?${p}`);
    const url = URL.createObjectURL(await res.blob());
    const a = h("a", { href: url, download: "footfall.csv" });
    document.body.append(a);
    a.click();
    a.remove();
  }

  function saveForm(view, params) {
    const name = h("input", { name: "report-name", placeholder: "report name" });
    const shared = h("input", { type: "checkbox", name: "report-shared" });
    const expiry = expirySelect("report-expiry");
    const out = h("span", { class: "muted", id: "saved" });
    return h("form", {
      class: "controls",
      onsubmit: async (e) => {
        e.preventDefault();
        try {
          const body = { name: name.value, view, query: params.toString(), shared: shared.checked };
          if (shared.checked && expiry.value) body.share_expires_at = expiresAt(expiry.value);
          const r = await api("/api/v1/reports", { method: "POST", body: JSON.stringify(body) });
          const link = `${location.origin}${r.shared ? r.share_url : r.url}`;
          out.replaceChildren("Saved: ", h("a", { href: link, id: "report-link" }, link));
        } catch (err) {
          out.replaceChildren(h("span", { class: "error" }, err.message));
        }
      },
    }, name, h("label", {}, h("span", {}, "shared by link"), shared), h("label", {}, h("span", {}, "link expires"), expiry),
      h("button", { type: "submit" }, "Save report"), out);
  }

  // A shared link's lifetime: never, or days from now.
  const EXPIRIES = [["", "never"], ["1", "in 1 day"], ["7", "in 7 days"], ["30", "in 30 days"], ["90", "in 90 days"]];
  const expirySelect = (name, first) => h("select", { name }, (first ? [first, ...EXPIRIES] : EXPIRIES).map(([v, label]) => h("option", { value: v }, label)));
  const expiresAt = (days) => new Date(Date.now() + Number(days) * 86_400_000).toISOString();

  // ---- users / sessions / events ----
  const PRESETS = [["1d", "last 24 hours"], ["7d", "last 7 days"], ["30d", "last 30 days"], ["90d", "last 90 days"]];
  const OPERATORS = [["eq", "is"], ["neq", "is not"], ["contains", "contains"], ["gt", ">"], ["lt", "<"], ["exists", "is set"]];
  const opLabel = (op) => OPERATORS.find(([v]) => v === op)?.[1] || op;
  // `field:op:value` as a person reads it: `browser is Firefox`.
  const filterText = (f) => {
    const [field, op, ...rest] = f.split(":");
    return `${field} ${opLabel(op)}${op === "exists" ? "" : ` ${rest.join(":")}`}`;
  };

  async function insights(params, readOnly) {
    if (!params.get("metric")) params.set("metric", "users");
    if (!params.get("last") && !params.get("from")) params.set("last", "7d");
    if (!params.get("tz")) params.set("tz", viewerZone);
    let opts;
    try {
      opts = await options();
    } catch (e) {
      return failed(e);
    }
    // The controls stay while the answer loads, and when it is an error: a bad choice is undone
    // from the page itself.
    const out = h("div", { id: "result" }, h("p", { class: "muted", id: "loading" }, "Loading the chart…"));
    show(insightsControls(params, opts), out);
    try {
      const [answer, people] = await Promise.all([api(`/api/v1/insights?${params}`), peopleOf(params)]);
      out.replaceChildren(...insightsResult(params, answer, people, false).filter(Boolean));
    } catch (e) {
      if (e.message !== "unauthorized") out.replaceChildren(h("p", { class: "error", id: "error" }, e.message));
    }
  }

  // The people of a query for "Meet your users": the users feed with the same events, filters,
  // range and sites (first and last seen, sessions and properties for each card). When the feed
  // cannot answer, the cards show the insights answer's sample IDs alone.
  async function peopleOf(params) {
    const q = new URLSearchParams();
    for (const k of ["event", "filter", "site", "bots", "last", "from", "to"]) params.getAll(k).forEach((v) => q.append(k, v));
    q.set("limit", "6");
    try {
      return (await api(`/api/v1/users?${q}`)).users;
    } catch (e) {
      if (e.message === "unauthorized") throw e;
      return null;
    }
  }

  function insightsView(params, answer, opts, readOnly) {
    return show(readOnly ? h("h2", {}, "Shared report") : insightsControls(params, opts), ...insightsResult(params, answer, null, readOnly));
  }

  // During: a preset, or a custom range of whole days in a time zone (`from`/`to` are the instants
  // those days start in `tz`). `with_` applies a change to the view's parameters and opens it.
  function rangeControls(params, with_) {
    const custom = params.has("from");
    const tz = params.get("tz") || viewerZone;
    const during = select("last", "During", [...PRESETS, ["custom", "custom range…"]], custom ? "custom" : params.get("last") || "", (v) => with_((p) => {
      if (v === "custom") {
        const today = dayIn(Date.now(), tz);
        p.set("from", zonedMidnight(addDays(today, -6), tz));
        p.set("to", zonedMidnight(addDays(today, 1), tz));
        p.delete("last");
      } else {
        p.set("last", v);
        p.delete("from");
        p.delete("to");
      }
    }));
    const fromIn = h("input", { type: "date", name: "from", value: custom ? dayIn(Date.parse(params.get("from")), tz) : "" });
    const toIn = h("input", { type: "date", name: "to", value: custom && params.get("to") ? dayIn(Date.parse(params.get("to")) - 1, tz) : "" });
    const tzIn = h("input", { name: "tz", value: tz, list: "zones", size: 18 });
    const range = custom ? h("form", {
      class: "controls", id: "range",
      onsubmit: (e) => {
        e.preventDefault();
        const zone = tzIn.value.trim() || viewerZone;
        with_((p) => {
          p.set("tz", zone);
          if (fromIn.value) p.set("from", zonedMidnight(fromIn.value, zone));
          if (toIn.value) p.set("to", zonedMidnight(addDays(toIn.value, 1), zone)); else p.delete("to");
        });
      },
    }, h("label", {}, "From", fromIn), h("label", {}, "To (inclusive)", toIn), h("label", {}, "Time zone", tzIn),
    h("datalist", { id: "zones" }, (Intl.supportedValuesOf?.("timeZone") || [viewerZone, "UTC"]).map((z) => h("option", { value: z }))),
    h("button", { type: "submit" }, "Apply")) : null;
    return [during, range];
  }

  // Chips for the values of a repeatable parameter (`event`, `filter`), each with a remove button.
  function chipList(name, params, label, with_) {
    const list = params.getAll(name);
    return h("span", { class: "chips", id: `${name}-chips` }, list.map((f) => h("span", {}, label(f), h("button", {
      title: "remove", "aria-label": `remove ${label(f)}`,
      onclick: () => with_((p) => {
        p.delete(name);
        list.filter((x) => x !== f).forEach((x) => p.append(name, x));
      }),
    }, "×"))));
  }

  // "Who used": events added one at a time from the event names, each a chip.
  function eventPicker(label, params, opts, with_) {
    const events = params.getAll("event");
    return h("span", { class: "group" },
      select("event", label, [["", events.length ? "add an event…" : "any event"], ...opts.events.filter((e) => !events.includes(e)).map((e) => [e, e])], "",
        (v) => v && with_((p) => p.append("event", v))),
      chipList("event", params, (e) => e, with_));
  }

  // Filters: a field, an operator, then a value picked from the values seen (or typed); the
  // filters in place as chips.
  function filterPicker(params, opts, with_) {
    const field = h("select", { name: "filter-field" }, h("option", { value: "" }, "field…"), opts.fields.map((f) => h("option", { value: f }, f)));
    const op = h("select", { name: "filter-op" }, OPERATORS.map(([v, t]) => h("option", { value: v }, t)));
    const value = h("select", { name: "filter-value", disabled: true }, h("option", { value: "" }, "value…"));
    const typed = h("input", { name: "filter-text", placeholder: "value", size: 14, hidden: true });
    const add = h("button", { type: "submit", id: "add-filter" }, "Add filter");
    const syncValue = () => {
      value.hidden = op.value === "exists";
      typed.hidden = op.value === "exists" || value.value !== "\u0000typed";
    };
    field.addEventListener("change", async () => {
      value.replaceChildren(h("option", { value: "" }, field.value ? "loading values…" : "value…"));
      value.disabled = true;
      if (!field.value) return;
      const q = new URLSearchParams({ field: field.value, last: "90d" });
      params.getAll("site").forEach((s) => q.append("site", s));
      let values = [];
      try {
        values = (await api(`/api/v1/properties/values?${q}`)).values.filter((v) => v.value != null);
      } catch (_) { /* a field without values: type one */ }
      value.replaceChildren(h("option", { value: "" }, "value…"),
        ...values.map((v) => h("option", { value: String(v.value) }, `${v.value} (${fmt(v.count)})`)),
        h("option", { value: "\u0000typed" }, "other value…"));
      value.disabled = false;
      value.setAttribute("data-loaded", field.value);
      syncValue();
    });
    op.addEventListener("change", syncValue);
    value.addEventListener("change", syncValue);
    const filterForm = h("form", {
      class: "controls", id: "filter-form",
      onsubmit: (e) => {
        e.preventDefault();
        if (!field.value) return;
        const v = value.value === "\u0000typed" ? typed.value.trim() : value.value;
        if (op.value !== "exists" && !v) return;
        with_((p) => p.append("filter", op.value === "exists" ? `${field.value}:exists` : `${field.value}:${op.value}:${v}`));
      },
    }, h("label", {}, "Filter", field), h("label", {}, "\u00a0", op), h("label", {}, "\u00a0", value), typed, add);

    return h("div", { class: "row" }, filterForm, chipList("filter", params, filterText, with_));
  }

  function insightsControls(params, opts) {
    const with_ = (change) => {
      const p = new URLSearchParams(params);
      change(p);
      p.delete("cursor");
      go("insights", p);
    };
    const set = (k) => (v) => with_((p) => (v ? p.set(k, v) : p.delete(k)));
    const [during, range] = rangeControls(params, with_);

    const fieldOptions = opts.fields.map((f) => [f, f]);
    return h("div", { class: "card controls", id: "controls" },
      select("metric", "Show", [["users", "Users"], ["sessions", "Sessions"], ["events", "Events"]], params.get("metric"), set("metric")),
      eventPicker("Who used", params, opts, with_),
      during,
      range,
      select("interval", "Interval", [["day", "day"], ["hour", "hour"], ["week", "week"], ["month", "month"]], params.get("interval") || "day", set("interval")),
      select("by", "By", [["", "time (interval)"], ...fieldOptions], params.get("by") || "", set("by")),
      select("split", "Split by", [["", "none"], ...fieldOptions], params.get("split") || "", set("split")),
      botsSwitch("insights", params),
      filterPicker(params, opts, with_));
  }

  // A table key as a person reads it: an interval's start in the query's time zone, "(none)" for
  // an event without the value.
  function keyText(key, params) {
    if (key == null || key === "") return "(none)";
    if (params.get("by")) return String(key);
    const interval = params.get("interval") || "day";
    return when(key, params.get("tz"), interval === "hour" ? "hour" : "day");
  }

  function insightsResult(params, answer, people, readOnly) {
    const empty = answer.total === 0;
    const by = params.get("by");
    const split = params.get("split");
    // With a split, a bucket's rows go together (buckets in the answer's order), so the split
    // reads as a column under its bucket.
    const order = new Map();
    answer.table.forEach((r) => order.has(r.key) || order.set(r.key, order.size));
    const table = split ? answer.table.map((r, i) => [r, i]).sort(([a, i], [b, j]) => order.get(a.key) - order.get(b.key) || i - j).map(([r]) => r) : answer.table;
    let previous;
    const rows = table.map((r) => {
      const key = keyText(r.key, params);
      const repeat = split && key === previous;
      previous = key;
      return h("tr", {}, h("td", { class: repeat ? "repeat" : null }, key),
        split ? h("td", {}, r.split == null || r.split === "" ? "(none)" : String(r.split)) : null, h("td", { class: "num" }, fmt(r.value)));
    });
    const samples = people || answer.sample_users?.map((u) => ({ id: u.id }));
    return [
      h("div", { class: "card" },
        h("div", { class: "stats" }, h("div", {}, h("div", { class: "big", id: "total" }, fmt(answer.total)),
          h("div", { class: "muted" }, `${answer.metric} in total`))),
        empty ? h("p", { class: "muted", id: "empty" }, emptyHint()) : chart(answer, params)),
      h("div", { class: "card scroll" },
        h("table", { id: "table" }, h("thead", {}, h("tr", {}, h("th", {}, by || params.get("interval") || "day"),
          split ? h("th", {}, split) : null, h("th", { class: "num" }, answer.metric))),
        h("tbody", {}, rows))),
      // A shared link's answer holds no people (issue #19): no "Meet your users" there.
      readOnly || !samples ? null : h("div", { class: "card" }, h("h3", {}, "Meet your users"),
        samples.length
          ? h("div", { id: "samples", class: "people" }, samples.map((u) => personCard(u, params)))
          : h("p", { class: "muted" }, "No users in this range.")),
      readOnly ? null : h("div", { class: "card controls" },
        h("button", { id: "csv", onclick: () => download("/api/v1/insights", params) }, "Download CSV"),
        saveForm("insights", params)),
    ];
  }

  // A person as a card: who, first and last seen, sessions, a few of their properties.
  function personCard(u, params) {
    const props = Object.entries(u.properties || {}).filter(([, v]) => v != null && v !== "").slice(0, 3);
    return h("div", { class: "person" },
      h("a", { href: userHref(u.id, params), class: "who" }, u.id),
      u.first_seen ? h("div", { class: "muted" }, u.user_id ? "identified" : "anonymous", ` · ${plural(u.session_count, "session")}`) : null,
      u.first_seen ? h("div", { class: "muted" }, `first seen ${when(u.first_seen)}`) : null,
      u.last_seen ? h("div", { class: "muted" }, `last seen ${when(u.last_seen)}`) : null,
      props.length ? h("dl", { class: "kv" }, props.map(([k, v]) => [h("dt", {}, k), h("dd", {}, valueText(v))])) : null);
  }

  function usersWith(params) {
    return (change) => {
      const p = new URLSearchParams(params);
      change(p);
      p.delete("cursor");
      go("users", p);
    };
  }

  async function users(params) {
    loading("users");
    let page, error, opts;
    try {
      opts = await options();
      page = await api(`/api/v1/users?${params}`);
    } catch (e) {
      if (e.message === "unauthorized") return;
      error = e; // shown under the controls, which stay
      page = { users: [], next_cursor: null };
    }
    const search = h("input", { name: "contains", placeholder: "search user or anonymous ID", value: params.get("contains") || "", size: 30 });
    const body = h("tbody", {});
    const more = h("button", { id: "more" }, "More");
    // Ranked by their sessions in the range ("struggling users": many short sessions first).
    const ranked = params.has("sort") && params.get("sort") !== "last_seen";
    const add = (p) => {
      body.append(...p.users.map((u) => h("tr", {},
        h("td", {}, h("a", { href: userHref(u.id, params) }, u.id)),
        h("td", {}, u.user_id ? "identified" : "anonymous"),
        h("td", {}, when(u.first_seen)), h("td", {}, when(u.last_seen)),
        h("td", { class: "num" }, fmt(u.session_count ?? 0)),
        ranked ? [h("td", { class: "num" }, fmt(u.sessions_in_range ?? 0)), h("td", { class: "num" }, seconds(u.avg_session_seconds ?? 0))] : null,
        h("td", {}, propList(u.properties)))));
      more.hidden = !p.next_cursor;
      more.onclick = async () => {
        const q = new URLSearchParams(params);
        q.set("cursor", p.next_cursor);
        add(await api(`/api/v1/users?${q}`));
      };
    };
    add(page);
    show(
      h("form", {
        class: "card controls",
        onsubmit: (e) => {
          e.preventDefault();
          const p = new URLSearchParams(params);
          if (search.value) p.set("contains", search.value); else p.delete("contains");
          go("users", p);
        },
      }, search, select("last", "Active during", [["7d", "last 7 days"], ["30d", "last 30 days"], ["90d", "last 90 days"]], params.get("last") || "7d", (v) => {
        const p = new URLSearchParams(params);
        p.set("last", v);
        go("users", p);
      }), select("sort", "Order", [["", "latest activity"], ["struggling", "struggling: many short sessions"], ["sessions", "most sessions"], ["avg_session", "shortest sessions"]], params.get("sort") || "", (v) => {
        usersWith(params)((p) => (v ? p.set("sort", v) : p.delete("sort")));
      }), botsSwitch("users", params), h("button", { type: "submit" }, "Search"), h("button", { type: "button", onclick: () => download("/api/v1/users", params) }, "Download CSV")),
      // People who did one of these events, with filters on user, session and event properties.
      opts ? h("div", { class: "card controls", id: "controls" }, eventPicker("Who did", params, opts, usersWith(params)), filterPicker(params, opts, usersWith(params))) : null,
      error ? h("p", { class: "error", id: "error" }, error.message) : h("div", { class: "card scroll" }, page.users.length
        ? h("table", { id: "users" }, h("thead", {}, h("tr", {}, ["User", "", "First seen", "Last seen", "Sessions", ...(ranked ? ["Sessions in range", "Average session"] : []), "Properties"].map((t) => h("th", {}, t)))), body)
        : h("p", { class: "muted" }, "No users active in this range yet."), more));
  }

  async function user(id, params) {
    loading("the user");
    let d;
    const bots = params.get("bots");
    try {
      d = await api(`/api/v1/users/${encodeURIComponent(id)}${bots ? `?bots=${encodeURIComponent(bots)}` : ""}`);
    } catch (e) {
      return failed(e);
    }
    const sessionHref = (sid) => `#session/${encodeURIComponent(sid)}${bots ? `?bots=${encodeURIComponent(bots)}` : ""}`;
    show(
      h("div", { class: "card" }, h("h2", { id: "user-id" }, d.user.id),
        h("p", {}, `${plural(d.user.session_count, "session")} · first seen ${when(d.user.first_seen)} · last seen ${when(d.user.last_seen)}`),
        h("p", { class: "muted" }, "Anonymous IDs: ", d.user.anonymous_ids.join(", ")),
        h("div", {}, h("h3", {}, "Properties"), propList(d.user.properties))),
      h("div", { class: "card", id: "timeline" }, d.sessions.slice().reverse().map((s) => h("div", { class: "session" },
        h("a", { href: sessionHref(s.session_id), class: "session-link" }, h("strong", {}, when(s.started_at))),
        ` · ${seconds(s.duration_seconds || 0)} · ${plural(s.events.length, "event")} · ${[s.browser, s.os, s.device, s.country].filter(Boolean).join(" · ")}`,
        h("div", { class: "scroll" }, h("table", {}, h("tbody", {}, s.events.map((e) => h("tr", {},
          h("td", { class: "nowrap" }, when(e.timestamp, null, "time")), h("td", {}, e.name), h("td", {}, e.path || e.url || "—"),
          h("td", {}, propList(e.props)))))))))));
  }

  // Session statistics take no time zone: the range is already instants.
  const SESSION_KEYS = ["last", "from", "to", "site", "bots", "user"];
  const sessionQuery = (params, extra = {}) => {
    const q = new URLSearchParams();
    for (const k of SESSION_KEYS) params.getAll(k).forEach((v) => q.append(k, v));
    for (const [k, v] of Object.entries(extra)) q.set(k, v);
    return q;
  };

  async function sessions(params, readOnly) {
    if (!params.get("last") && !params.get("from")) params.set("last", "7d");
    if (!readOnly) loading("sessions");
    let s, overTime, list;
    // The chart: sessions over the same range, sites and bots (insights, metric=sessions).
    const q = new URLSearchParams({ metric: "sessions", tz: params.get("tz") || viewerZone, interval: params.get("last") === "1d" ? "hour" : "day" });
    for (const k of ["last", "from", "to", "site", "bots"]) params.getAll(k).forEach((v) => q.append(k, v));
    const stats = sessionQuery(params);
    if (params.get("split")) stats.set("split", params.get("split"));
    try {
      [s, overTime, list] = await Promise.all([
        api(`/api/v1/sessions/stats?${stats}`),
        params.get("user") ? null : api(`/api/v1/insights?${q}`),
        readOnly ? null : api(`/api/v1/sessions?${sessionQuery(params, { limit: params.get("limit") || 25 })}`),
      ]);
    } catch (e) {
      if (e.message === "unauthorized") return;
      return sessionsView(params, null, readOnly, null, e);
    }
    sessionsView(params, s, readOnly, overTime);
    if (list && list.sessions.length) main.append(sessionList(params, list));
  }

  // The paged list: newest first, each row opens the session's page; "More" adds the next page
  // (`limit=` in the view's URL sets the page size, 25 by default).
  function sessionList(params, first) {
    const body = h("tbody", {});
    const more = h("button", { id: "more-sessions" }, "More sessions");
    const add = (page) => {
      body.append(...page.sessions.map((r) => h("tr", {},
        h("td", {}, h("a", { href: `#session/${encodeURIComponent(r.session_id)}${params.get("bots") ? `?bots=${params.get("bots")}` : ""}` }, when(r.started_at, params.get("tz")))),
        h("td", {}, h("a", { href: userHref(r.user, params) }, r.user)),
        h("td", { class: "num" }, seconds(r.duration_seconds)),
        h("td", { class: "num" }, fmt(r.events)),
        h("td", { class: "num" }, fmt(r.pageviews)),
        h("td", {}, r.entry_path || "—"),
        h("td", {}, [r.browser, r.os].filter(Boolean).join(" · ") || "—"),
        h("td", {}, r.country || "—"))));
      more.hidden = !page.next_cursor;
      more.onclick = async () => {
        more.disabled = true;
        try {
          add(await api(`/api/v1/sessions?${sessionQuery(params, { limit: params.get("limit") || 25, cursor: page.next_cursor })}`));
        } catch (e) {
          more.replaceWith(h("p", { class: "error" }, e.message));
        }
        more.disabled = false;
      };
    };
    add(first);
    return h("div", { class: "card" }, h("h3", {}, "Sessions"),
      h("div", { class: "scroll" }, h("table", { id: "session-list" },
        h("thead", {}, h("tr", {}, ["Started", "Visitor", "Length", "Events", "Page views", "Entry page", "Browser", "Country"].map((t, i) => h("th", { class: i >= 2 && i <= 4 ? "num" : "" }, t)))),
        body)),
      more);
  }

  // With `error`, the controls and the error under them, so a bad choice is undone from the page.
  function sessionsView(params, s, readOnly, overTime, error) {
    const set = (k) => (v) => {
      const p = new URLSearchParams(params);
      if (v) p.set(k, v); else p.delete(k);
      go("sessions", p);
    };
    const split = params.get("split") || "";
    // What the statistics were asked (a report saves it; the CSV answers it).
    const asked = sessionQuery(params, split ? { split } : {});
    const stat = (id, v, label) => h("div", {}, h("div", { class: "big", id }, v), h("div", { class: "muted" }, label));
    show(
      readOnly ? h("h2", {}, "Shared report") : h("div", { class: "card controls" },
        rangeControls(params, (change) => {
          const p = new URLSearchParams(params);
          change(p);
          go("sessions", p);
        }),
        select("split", "Split by", [["", "none"], ["browser", "browser"], ["os", "OS"], ["device", "device"], ["country", "country"], ["entry_path", "entry page"], ["user", "user"], ["site", "site"]], split, set("split")),
        botsSwitch("sessions", params),
        h("button", { onclick: () => download("/api/v1/sessions/stats", asked) }, "Download CSV"),
        saveForm("sessions", asked)),
      error ? h("p", { class: "error", id: "error" }, error.message) : null,
      error ? null : h("div", { class: "card stats" },
        stat("total-sessions", fmt(s.total_sessions), "sessions"),
        stat("avg-session", seconds(s.avg_session_seconds), "average session"),
        stat("total-time", seconds(s.total_session_seconds), "total time"),
        stat("bounce-rate", `${(s.bounce_rate * 100).toFixed(1)} %`, "bounce rate")),
      !error && s.total_sessions === 0 ? h("p", { class: "muted", id: "empty" }, "No sessions in this range yet.") : null,
      overTime && s.total_sessions ? h("div", { class: "card", id: "sessions-chart" }, h("h3", {}, "Sessions over time"), chart(overTime, new URLSearchParams({ tz: viewerZone }))) : null,
      split && !error ? h("div", { class: "card scroll" }, h("table", { id: "split" },
        h("thead", {}, h("tr", {}, [split, "sessions", "average", "total", "bounce rate"].map((t, i) => h("th", { class: i ? "num" : "" }, t)))),
        h("tbody", {}, s.table.map((r) => h("tr", {},
          h("td", {}, split === "user" && r.key ? h("a", { href: userHref(r.key, params) }, r.key) : r.key ?? "(none)"),
          h("td", { class: "num" }, fmt(r.total_sessions)), h("td", { class: "num" }, seconds(r.avg_session_seconds)),
          h("td", { class: "num" }, seconds(r.total_session_seconds)), h("td", { class: "num" }, `${(r.bounce_rate * 100).toFixed(1)} %`)))))) : null);
  }

  async function reports() {
    loading("saved reports");
    let list;
    try {
      list = await api("/api/v1/reports");
    } catch (e) {
      return failed(e);
    }
    const by = (who) => (who ? ` by ${who}` : "");
    const link = (r) => {
      if (!r.shared) return "private";
      const expiry = expirySelect("share-expiry", ["keep", "change…"]);
      expiry.addEventListener("change", () => changeReport(r, { share_expires_at: expiry.value ? expiresAt(expiry.value) : null }));
      const ends = r.share_expires_at ? `expires ${when(r.share_expires_at)}` : "never expires";
      return h("div", { class: "share-info" },
        h("a", { href: `${location.origin}${r.share_url}` }, "shared link"),
        h("div", { class: "muted" }, `made ${when(r.shared_at)}${by(r.shared_by)}; ${ends}`),
        h("label", {}, h("span", {}, "expiry "), expiry));
    };
    show(h("div", { class: "card" }, list.reports.length ? h("div", { class: "scroll" }, h("table", { id: "reports" },
      h("thead", {}, h("tr", {}, ["Report", "View", "Query", "Saved", "Link", ""].map((t) => h("th", {}, t)))),
      h("tbody", {}, list.reports.map((r) => h("tr", {},
      h("td", {}, h("a", { href: r.url }, r.name)), h("td", {}, r.view), h("td", {}, h("code", {}, r.query)),
      h("td", { class: "saved" }, `${when(r.created_at)}${by(r.created_by)}`),
      h("td", { class: "link" }, link(r)),
      h("td", {},
        h("button", { class: "rename", onclick: (e) => renameReport(r, e.target.closest("tr")) }, "Rename"), " ",
        h("button", { class: "share", onclick: () => changeReport(r, { shared: !r.shared }) }, r.shared ? "Withdraw link" : "Share by link"), " ",
        h("button", { onclick: async () => { await api(`/api/v1/reports/${r.id}`, { method: "DELETE" }); reports(); } }, "Delete")))))))
      : h("p", { class: "muted" }, "No saved reports yet: use “Save report” under a chart.")));
  }

  async function changeReport(r, change) {
    try {
      await api(`/api/v1/reports/${encodeURIComponent(r.id)}`, { method: "PATCH", body: JSON.stringify(change) });
      reports();
    } catch (e) {
      failed(e);
    }
  }
  function renameReport(r, row) {
    const input = h("input", { name: "rename", value: r.name, maxlength: 200, required: true });
    row.firstChild.replaceChildren(h("form", { onsubmit: (e) => { e.preventDefault(); changeReport(r, { name: input.value }); } },
      input, " ", h("button", { class: "primary", type: "submit" }, "Save")));
    input.focus();
  }

  async function openReport(id, shared) {
    loading("the report");
    try {
      const r = shared
        ? await api(`/api/v1/shared/${encodeURIComponent(id)}`, { public: true })
        : await api(`/api/v1/reports/${encodeURIComponent(id)}`);
      if (!shared) return go(r.report.view, new URLSearchParams(r.report.query));
      const params = new URLSearchParams(r.report.query);
      document.title = `${r.report.name} · Footfall`;
      if (r.report.view === "insights") insightsView(params, r.result, null, true);
      else if (r.report.view === "sessions") sessionsView(params, r.result, true);
      else show(h("pre", {}, JSON.stringify(r.result, null, 2)));
      main.prepend(h("h1", { id: "report-name" }, r.report.name));
    } catch (e) {
      if (shared && e.code === "expired") {
        return show(h("p", { class: "card", id: "expired" }, "This shared link has expired. Ask whoever sent it for a new one."));
      }
      failed(e);
    }
  }

  // ---- API tokens (admin only; a read token is shown the 403) ----
  async function tokens(created) {
    loading("API tokens");
    let list;
    try {
      list = await api("/api/v1/tokens");
    } catch (e) {
      return failed(e);
    }
    const name = h("input", { name: "name", placeholder: "name", required: true, maxlength: 200 });
    const scope = h("select", { name: "scope" }, h("option", { value: "read" }, "read"), h("option", { value: "admin" }, "admin"));
    const sites = h("input", { name: "sites", placeholder: "site keys, comma-separated" });
    const error = h("p", { class: "error", hidden: true });
    const form = h("form", {
      id: "new-token-form",
      onsubmit: async (e) => {
        e.preventDefault();
        try {
          const body = { name: name.value, scope: scope.value, sites: sites.value.split(",").map((s) => s.trim()).filter(Boolean) };
          tokens(await api("/api/v1/tokens", { method: "POST", body: JSON.stringify(body) }));
        } catch (err) {
          error.hidden = false;
          error.textContent = err.message;
        }
      },
    }, name, " ", scope, " ", sites, " ", h("button", { class: "primary", type: "submit" }, "Create token"), error);
    show(h("div", { class: "card" },
      h("h2", {}, "API tokens"),
      h("p", { class: "muted" }, "A read token may read its sites only; an admin token may do everything."),
      created ? h("p", { id: "new-token" }, "Copy the new token now; it is not shown again: ", h("code", {}, created.token)) : null,
      list.tokens.length
        ? h("table", { id: "tokens" },
          h("thead", {}, h("tr", {}, ["name", "scope", "sites", "created", "last used", ""].map((c) => h("th", {}, c)))),
          h("tbody", {}, list.tokens.map((t) => h("tr", {},
            h("td", {}, t.name), h("td", {}, t.scope), h("td", {}, t.sites.join(", ")),
            h("td", {}, when(t.created_at)), h("td", {}, t.last_used ? when(t.last_used) : "never"),
            h("td", {}, h("button", { onclick: async () => { await api(`/api/v1/tokens/${encodeURIComponent(t.id)}`, { method: "DELETE" }); tokens(); } }, "Revoke"))))))
        : h("p", { class: "muted" }, "No API tokens yet."),
      form));
  }

  // The site picker, in the header when the collector has events of more than one site. The
  // choice is the view's `site=` and is remembered, so the nav links keep it.
  const SITE_KEY = "footfall_site";
  async function sitePicker(parts, params) {
    const picker = document.getElementById("site");
    if (!cache.sites) {
      cache.sites = api("/api/v1/properties/values?field=site&last=90d", { bare: true })
        .then((a) => a.values.map((v) => v.value).filter(Boolean).sort(), () => []);
    }
    const sites = await cache.sites;
    const chosen = params.getAll("site");
    picker.hidden = sites.length < 2 && !chosen.length;
    picker.replaceChildren(h("option", { value: "" }, "All sites"),
      ...[...new Set([...sites, ...chosen])].map((x) => h("option", { value: x, selected: chosen.length === 1 && chosen[0] === x }, x)));
    picker.onchange = () => {
      const p = new URLSearchParams(route().params);
      p.delete("site");
      p.delete("cursor");
      if (picker.value) {
        p.set("site", picker.value);
        localStorage.setItem(SITE_KEY, picker.value);
      } else {
        localStorage.removeItem(SITE_KEY);
      }
      go(route().parts.map(encodeURIComponent).join("/"), p);
    };
  }

  function render() {
    const { parts, params } = route();
    const remembered = localStorage.getItem(SITE_KEY);
    if (remembered && who && !params.has("site") && parts[0] !== "shared") {
      params.set("site", remembered);
      history.replaceState(null, "", `#${location.hash.slice(1).split("?")[0] || parts[0]}?${params}`);
    }
    for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("active", a.getAttribute("href") === `#${parts[0]}`);
    if (parts[0] === "shared") return openReport(parts[1], true);
    if (!who) return signIn();
    const out = document.getElementById("signout");
    out.hidden = false;
    out.onclick = async () => {
      await fetch("/api/v1/session", { method: "DELETE" });
      who = null;
      signIn();
    };
    sitePicker(parts, params);
    if (kit.views[parts[0]]) return kit.views[parts[0]](params, parts);
    switch (parts[0]) {
      case "users": return users(params);
      case "user": return user(parts[1], params);
      case "sessions": return sessions(params);
      case "reports": return reports();
      case "tokens": return tokens();
      case "report": return openReport(parts[1], false);
      default: return insights(params);
    }
  }

  // What the other views (journeys.js) build with; they add themselves to `views`.
  const kit = { h, api, go, show, loading, failed, select, botsSwitch, userHref, fmt, seconds, options, views: {},
    route, chart, rangeControls, when, plural, valueText, propList, viewerZone, personCard, filterText, emptyHint, hasDemoSite };
  window.footfallKit = kit;

  // Who the cookie signs in, if anyone; a token an older dashboard left in localStorage is
  // exchanged for the cookie once and removed.
  async function start() {
    const old = localStorage.getItem(OLD_TOKEN_KEY);
    localStorage.removeItem(OLD_TOKEN_KEY);
    const res = old
      ? await fetch("/api/v1/session", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ token: old }) })
      : route().parts[0] === "shared" ? null : await fetch("/api/v1/session");
    who = res && res.ok ? await res.json() : null;
    if (res && res.status === 401 && (await res.json()).error?.message !== "not signed in") {
      return signIn("The sign-in has ended or the token was refused. Sign in again.");
    }
    render();
  }
  window.addEventListener("hashchange", render);
  // After every script of the page ran, so that the views they add can be opened first.
  window.addEventListener("DOMContentLoaded", start);
})();

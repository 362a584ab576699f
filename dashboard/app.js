// The Footfall dashboard: the three views of the query API in a browser, with charts (uPlot,
// bundled at build time). No framework: a small `h()` to build elements and a hash router.
"use strict";
(() => {
  const main = document.getElementById("main");
  const TOKEN_KEY = "footfall_token";
  let token = localStorage.getItem(TOKEN_KEY) || "";
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
    for (const c of children.flat()) {
      if (c != null && c !== false) el.append(c instanceof Node ? c : String(c));
    }
    return el;
  }
  const fmt = (n) => (typeof n === "number" ? n.toLocaleString("en-US", { maximumFractionDigits: 2 }) : n);
  const seconds = (s) => (s >= 3600 ? `${(s / 3600).toFixed(1)} h` : s >= 60 ? `${(s / 60).toFixed(1)} min` : `${s.toFixed(1)} s`);
  const when = (t) => new Date(t).toLocaleString();

  async function api(path, opts = {}) {
    const headers = { authorization: `Bearer ${token}` };
    if (opts.body) headers["content-type"] = "application/json";
    const res = await fetch(path, { ...opts, headers: { ...headers, ...(opts.headers || {}) } });
    if (res.status === 401 && !opts.public) {
      signIn("The token was refused. Sign in again.");
      throw new Error("unauthorized");
    }
    const body = res.status === 204 ? null : await res.json();
    if (!res.ok) throw new Error(body?.error?.message || res.statusText);
    return body;
  }

  function route() {
    const [path, query] = location.hash.slice(1).split("?");
    return { parts: (path || "insights").split("/").map(decodeURIComponent), params: new URLSearchParams(query || "") };
  }
  function go(view, params) {
    location.hash = `${view}${params && [...params].length ? `?${params}` : ""}`;
  }
  function show(...nodes) {
    main.replaceChildren(...nodes);
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
          token = input.value.trim();
          try {
            await api("/api/v1/events?last=1d");
            localStorage.setItem(TOKEN_KEY, token);
            render();
          } catch (_) { /* signIn() already shown */ }
        },
      }, input, " ", h("button", { class: "primary", type: "submit" }, "Sign in"))));
  }

  // ---- chart ----
  function chart(answer) {
    const box = h("div", { class: "chart" });
    const series = answer.series || [];
    const points = series[0]?.points || [];
    if (!points.length) return box;
    const xs = points.map((p) => Date.parse(p.t) / 1000);
    const data = [xs, ...series.map((s) => s.points.map((p) => p.value))];
    const colours = ["#2f6fde", "#e0672f", "#2fa66b", "#9b3fd1", "#c9a227", "#d13f6e", "#3fb5c9", "#7a7a7a"];
    const opts = {
      width: Math.max(320, (main.clientWidth || 900) - 40),
      height: 260,
      series: [{}, ...series.map((s, i) => ({ label: s.key ?? answer.metric, stroke: colours[i % colours.length], width: 2 }))],
      axes: [{}, { values: (u, vals) => vals.map(fmt) }],
    };
    requestAnimationFrame(() => new uPlot(opts, data, box));
    return box;
  }

  async function options() {
    if (!cache.options) {
      const [events, props] = await Promise.all([api("/api/v1/events?last=90d"), api("/api/v1/properties?last=90d")]);
      cache.options = {
        events: events.events.map((e) => e.name),
        fields: [...props.columns, ...props.event.map((k) => `event.${k.key}`), ...props.user.map((k) => `user.${k.key}`)],
      };
    }
    return cache.options;
  }

  async function download(path, params) {
    const p = new URLSearchParams(params);
    p.set("format", "csv");
    const res = await fetch(`${path}?${p}`, { headers: { authorization: `Bearer ${token}` } });
    const url = URL.createObjectURL(await res.blob());
    const a = h("a", { href: url, download: "footfall.csv" });
    document.body.append(a);
    a.click();
    a.remove();
  }

  function saveForm(view, params) {
    const name = h("input", { name: "report-name", placeholder: "report name" });
    const shared = h("input", { type: "checkbox", name: "report-shared" });
    const out = h("span", { class: "muted", id: "saved" });
    return h("form", {
      class: "controls",
      onsubmit: async (e) => {
        e.preventDefault();
        try {
          const r = await api("/api/v1/reports", { method: "POST", body: JSON.stringify({ name: name.value, view, query: params.toString(), shared: shared.checked }) });
          const link = `${location.origin}${r.shared ? r.share_url : r.url}`;
          out.replaceChildren("Saved: ", h("a", { href: link, id: "report-link" }, link));
        } catch (err) {
          out.replaceChildren(h("span", { class: "error" }, err.message));
        }
      },
    }, name, h("label", {}, h("span", {}, "shared by link"), shared), h("button", { type: "submit" }, "Save report"), out);
  }

  // ---- users / sessions / events ----
  async function insights(params, readOnly) {
    if (!params.get("metric")) params.set("metric", "users");
    if (!params.get("last") && !params.get("from")) params.set("last", "7d");
    if (!readOnly) loading("the chart");
    let answer, opts;
    try {
      [answer, opts] = await Promise.all([api(`/api/v1/insights?${params}`), readOnly ? null : options()]);
    } catch (e) {
      return failed(e);
    }
    return insightsView(params, answer, opts, readOnly);
  }

  function insightsView(params, answer, opts, readOnly) {
    const set = (k) => (v) => {
      const p = new URLSearchParams(params);
      if (v) p.set(k, v); else p.delete(k);
      go("insights", p);
    };
    const filters = params.getAll("filter");
    const filterInput = h("input", { name: "filter", placeholder: "browser:eq:Chrome", size: 22 });
    const controls = readOnly ? null : h("div", { class: "card controls" },
      select("metric", "Metric", [["users", "Users"], ["sessions", "Sessions"], ["events", "Events"]], params.get("metric"), set("metric")),
      select("event", "Who used", [["", "any event"], ...opts.events.map((e) => [e, e])], params.get("event") || "", set("event")),
      select("last", "During", [["1d", "last 24 hours"], ["7d", "last 7 days"], ["30d", "last 30 days"], ["90d", "last 90 days"]], params.get("last") || "", set("last")),
      select("interval", "By interval", [["day", "day"], ["hour", "hour"], ["week", "week"], ["month", "month"]], params.get("interval") || "day", set("interval")),
      select("by", "By", [["", "interval"], ...opts.fields.map((f) => [f, f])], params.get("by") || "", set("by")),
      select("split", "Split by", [["", "none"], ...opts.fields.map((f) => [f, f])], params.get("split") || "", set("split")),
      botsSwitch("insights", params),
      h("form", {
        class: "controls",
        onsubmit: (e) => {
          e.preventDefault();
          if (!filterInput.value.trim()) return;
          const p = new URLSearchParams(params);
          p.append("filter", filterInput.value.trim());
          go("insights", p);
        },
      }, h("label", {}, "Filter (field:op:value)", filterInput), h("button", { type: "submit" }, "Add filter")),
      h("div", { class: "chips" }, filters.map((f) => h("span", {}, f, h("button", {
        title: "remove",
        onclick: () => {
          const p = new URLSearchParams(params);
          p.delete("filter");
          filters.filter((x) => x !== f).forEach((x) => p.append("filter", x));
          go("insights", p);
        },
      }, "×")))));
    const empty = answer.total === 0;
    return show(
      controls || h("h2", {}, "Shared report"),
      h("div", { class: "card" },
        h("div", { class: "stats" }, h("div", {}, h("div", { class: "big", id: "total" }, fmt(answer.total)),
          h("div", { class: "muted" }, `${answer.metric} in total`))),
        empty ? h("p", { class: "muted", id: "empty" }, "Nothing matches yet. Open the demo shop (/demo/) and click around, or widen the range.") : chart(answer)),
      h("div", { class: "card" },
        h("table", { id: "table" }, h("thead", {}, h("tr", {}, h("th", {}, params.get("by") || "interval"),
          params.get("split") ? h("th", {}, params.get("split")) : null, h("th", { class: "num" }, answer.metric))),
          h("tbody", {}, answer.table.map((r) => h("tr", {}, h("td", {}, r.key ?? "(none)"),
            params.get("split") ? h("td", {}, r.split ?? "(none)") : null, h("td", { class: "num" }, fmt(r.value))))))),
      // A shared link's answer holds no people (issue #19): no "Meet your users" there.
      readOnly || !answer.sample_users ? null : h("div", { class: "card" }, h("h3", {}, "Meet your users"),
        answer.sample_users.length
          ? h("ul", { id: "samples" }, answer.sample_users.map((u) => h("li", {}, h("a", { href: userHref(u.id, params) }, u.id))))
          : h("p", { class: "muted" }, "No users in this range.")),
      readOnly ? null : h("div", { class: "card controls" },
        h("button", { id: "csv", onclick: () => download("/api/v1/insights", params) }, "Download CSV"),
        saveForm("insights", params)));
  }

  async function users(params) {
    loading("users");
    let page;
    try {
      page = await api(`/api/v1/users?${params}`);
    } catch (e) {
      return failed(e);
    }
    const search = h("input", { name: "contains", placeholder: "search user or anonymous ID", value: params.get("contains") || "", size: 30 });
    const body = h("tbody", {});
    const more = h("button", { id: "more" }, "More");
    const add = (p) => {
      body.append(...p.users.map((u) => h("tr", {},
        h("td", {}, h("a", { href: userHref(u.id, params) }, u.id)),
        h("td", {}, u.user_id ? "identified" : "anonymous"),
        h("td", {}, when(u.first_seen)), h("td", {}, when(u.last_seen)),
        h("td", { class: "num" }, u.session_count),
        h("td", {}, JSON.stringify(u.properties)))));
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
      }), botsSwitch("users", params), h("button", { type: "submit" }, "Search"), h("button", { type: "button", onclick: () => download("/api/v1/users", params) }, "Download CSV")),
      h("div", { class: "card" }, page.users.length
        ? h("table", { id: "users" }, h("thead", {}, h("tr", {}, ["User", "", "First seen", "Last seen", "Sessions", "Properties"].map((t) => h("th", {}, t)))), body)
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
    show(
      h("div", { class: "card" }, h("h2", { id: "user-id" }, d.user.id),
        h("p", {}, `${d.user.session_count} sessions · first seen ${when(d.user.first_seen)} · last seen ${when(d.user.last_seen)}`),
        h("p", { class: "muted" }, "Anonymous IDs: ", d.user.anonymous_ids.join(", ")),
        h("p", {}, "Properties: ", h("code", {}, JSON.stringify(d.user.properties)))),
      h("div", { class: "card", id: "timeline" }, d.sessions.slice().reverse().map((s) => h("div", { class: "session" },
        h("strong", {}, when(s.started_at)), ` · ${seconds(s.duration_seconds)} · ${[s.browser, s.os, s.device, s.country].filter(Boolean).join(" · ")}`,
        h("table", {}, h("tbody", {}, s.events.map((e) => h("tr", {},
          h("td", {}, new Date(e.timestamp).toLocaleTimeString()), h("td", {}, e.name), h("td", {}, e.url),
          h("td", {}, h("code", {}, JSON.stringify(e.props)))))))))));
  }

  async function sessions(params, readOnly) {
    if (!params.get("last") && !params.get("from")) params.set("last", "7d");
    if (!readOnly) loading("sessions");
    let s;
    try {
      s = await api(`/api/v1/sessions/stats?${params}`);
    } catch (e) {
      return failed(e);
    }
    return sessionsView(params, s, readOnly);
  }

  function sessionsView(params, s, readOnly) {
    const set = (k) => (v) => {
      const p = new URLSearchParams(params);
      if (v) p.set(k, v); else p.delete(k);
      go("sessions", p);
    };
    const split = params.get("split") || "";
    const stat = (id, v, label) => h("div", {}, h("div", { class: "big", id }, v), h("div", { class: "muted" }, label));
    show(
      readOnly ? h("h2", {}, "Shared report") : h("div", { class: "card controls" },
        select("last", "During", [["1d", "last 24 hours"], ["7d", "last 7 days"], ["30d", "last 30 days"], ["90d", "last 90 days"]], params.get("last") || "", set("last")),
        select("split", "Split by", [["", "none"], ["browser", "browser"], ["os", "OS"], ["device", "device"], ["country", "country"], ["entry_path", "entry page"], ["user", "user"]], split, set("split")),
        botsSwitch("sessions", params),
        h("button", { onclick: () => download("/api/v1/sessions/stats", params) }, "Download CSV"),
        saveForm("sessions", params)),
      h("div", { class: "card stats" },
        stat("total-sessions", fmt(s.total_sessions), "sessions"),
        stat("avg-session", seconds(s.avg_session_seconds), "average session"),
        stat("total-time", seconds(s.total_session_seconds), "total time"),
        stat("bounce-rate", `${(s.bounce_rate * 100).toFixed(1)} %`, "bounce rate")),
      s.total_sessions === 0 ? h("p", { class: "muted" }, "No sessions in this range yet.") : null,
      split ? h("div", { class: "card" }, h("table", { id: "split" },
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
    show(h("div", { class: "card" }, list.reports.length ? h("table", { id: "reports" }, h("tbody", {}, list.reports.map((r) => h("tr", {},
      h("td", {}, h("a", { href: r.url }, r.name)), h("td", {}, r.view), h("td", {}, h("code", {}, r.query)),
      h("td", {}, r.shared ? h("a", { href: `${location.origin}${r.share_url}` }, "shared link") : "private"),
      h("td", {},
        h("button", { class: "rename", onclick: (e) => renameReport(r, e.target.closest("tr")) }, "Rename"), " ",
        h("button", { class: "share", onclick: () => changeReport(r, { shared: !r.shared }) }, r.shared ? "Withdraw link" : "Share by link"), " ",
        h("button", { onclick: async () => { await api(`/api/v1/reports/${r.id}`, { method: "DELETE" }); reports(); } }, "Delete"))))))
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

  function render() {
    const { parts, params } = route();
    for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("active", a.getAttribute("href") === `#${parts[0]}`);
    if (parts[0] === "shared") return openReport(parts[1], true);
    if (!token) return signIn();
    const out = document.getElementById("signout");
    out.hidden = false;
    out.onclick = () => {
      localStorage.removeItem(TOKEN_KEY);
      token = "";
      signIn();
    };
    if (kit.views[parts[0]]) return kit.views[parts[0]](params);
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
  const kit = { h, api, go, show, loading, failed, select, botsSwitch, userHref, fmt, seconds, options, views: {} };
  window.footfallKit = kit;

  window.addEventListener("hashchange", render);
  // After every script of the page ran, so that the views they add can be opened first.
  window.addEventListener("DOMContentLoaded", render);
})();

// The Overview page, as Plausible shows a site: visitors, page views, sessions, bounce rate and
// average visit time over a range, a chart of visitors, then the top pages, entry pages,
// referrers, UTM sources and campaigns, browsers, OS, devices and countries. Every number comes
// from the query API's existing endpoints (insights `by=`, session statistics `split=entry_path`),
// and every row opens the Users · Sessions · Events tool filtered to it.
"use strict";
(() => {
  const kit = window.footfallKit;
  const { h, api, go, show, botsSwitch, fmt, seconds, chart } = kit;
  const ROWS = 8;
  // Styles set through the CSS object model: the dashboard's Content-Security-Policy refuses
  // inline style attributes.
  const styled = (el, props) => {
    for (const [k, v] of Object.entries(props)) el.style.setProperty(k, String(v));
    return el;
  };

  // The panels: a title, the column's name, the field a row filters on, and the query that fills it.
  const PANELS = [
    { id: "pages", title: "Top pages", column: "page", field: "path", query: { metric: "users", event: "$pageview", by: "path" } },
    { id: "entry", title: "Entry pages", column: "page", field: "path", entry: true },
    { id: "referrers", title: "Referrers", column: "source", field: "referrer_domain", query: { metric: "users", by: "referrer_domain" }, none: "Direct / none" },
    { id: "utm-sources", title: "UTM sources", column: "utm_source", field: "utm_source", query: { metric: "users", by: "utm_source" }, skipNone: true },
    { id: "utm-campaigns", title: "UTM campaigns", column: "utm_campaign", field: "utm_campaign", query: { metric: "users", by: "utm_campaign" }, skipNone: true },
    { id: "browsers", title: "Browsers", column: "browser", field: "browser", query: { metric: "users", by: "browser" } },
    { id: "os", title: "Operating systems", column: "OS", field: "os", query: { metric: "users", by: "os" } },
    { id: "devices", title: "Devices", column: "device", field: "device", query: { metric: "users", by: "device" } },
    { id: "countries", title: "Countries", column: "country", field: "country", query: { metric: "users", by: "country" }, none: "unknown" },
  ];

  // The page's range, sites and bots, carried into each query and each link.
  function scope(params) {
    const q = new URLSearchParams();
    for (const k of ["last", "from", "to", "tz", "site", "bots"]) params.getAll(k).forEach((v) => q.append(k, v));
    return q;
  }
  const query = (base, extra) => {
    const q = new URLSearchParams(base);
    for (const [k, v] of Object.entries(extra)) q.append(k, v);
    return q;
  };

  async function overview(params) {
    if (!params.get("last") && !params.get("from")) params.set("last", "7d");
    if (!params.get("tz")) params.set("tz", kit.viewerZone);
    const base = scope(params);
    const plain = new URLSearchParams(base); // session statistics have no time zone to take
    plain.delete("tz");
    const with_ = (change) => {
      const p = new URLSearchParams(params);
      change(p);
      go("overview", p);
    };
    const out = h("div", { id: "result" }, h("p", { class: "muted", id: "loading" }, "Loading the overview…"));
    show(h("div", { class: "card controls", id: "controls" },
      kit.rangeControls(params, with_),
      botsSwitch("overview", params)), out);
    try {
      const hourly = params.get("last") === "1d";
      const [visitors, pageviews, stats, ...panels] = await Promise.all([
        api(`/api/v1/insights?${query(base, { metric: "users", interval: hourly ? "hour" : "day" })}`),
        api(`/api/v1/insights?${query(base, { metric: "events", event: "$pageview", interval: "month" })}`),
        api(`/api/v1/sessions/stats?${plain}`),
        ...PANELS.map((p) => (p.entry
          ? api(`/api/v1/sessions/stats?${query(plain, { split: "entry_path" })}`).then((a) => a.table.map((r) => ({ key: r.key, value: r.total_sessions })))
          : api(`/api/v1/insights?${query(base, p.query)}`).then((a) => a.table))),
      ]);
      await kit.hasDemoSite();
      const stat = (id, value, label) => h("div", {}, h("div", { class: "muted" }, label), h("div", { class: "big", id }, value));
      out.replaceChildren(
        h("div", { class: "card" },
          h("div", { class: "stats" },
            stat("visitors", fmt(visitors.total), "unique visitors"),
            stat("pageviews", fmt(pageviews.total), "page views"),
            stat("sessions", fmt(stats.total_sessions), "sessions"),
            stat("bounce", `${(stats.bounce_rate * 100).toFixed(1)} %`, "bounce rate"),
            stat("duration", seconds(stats.avg_session_seconds), "average visit")),
          visitors.total === 0 ? h("p", { class: "muted", id: "empty" }, kit.emptyHint()) : chart(visitors, params)),
        h("div", { class: "panels" }, PANELS.map((p, i) => panel(p, panels[i], params))));
    } catch (e) {
      if (e.message !== "unauthorized") out.replaceChildren(h("p", { class: "error", id: "error" }, e.message));
    }
  }

  // One list: the largest rows with a bar as long as their share of the largest, each a link to
  // the tool filtered to its value (a row without the value has no filter to open).
  function panel(p, rows, params) {
    const shown = rows.filter((r) => !(p.skipNone && (r.key == null || r.key === ""))).slice(0, ROWS);
    const top = Math.max(1, ...shown.map((r) => r.value));
    const link = (value) => {
      const q = scope(params);
      q.set("metric", "users");
      q.append("filter", `${p.field}:eq:${value}`);
      return `#insights?${q}`;
    };
    return h("div", { class: "card panel", id: p.id },
      h("h3", {}, p.title),
      shown.length
        ? h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, p.column), h("th", { class: "num" }, p.entry ? "sessions" : "visitors"))),
          h("tbody", {}, shown.map((r) => {
            const none = r.key == null || r.key === "";
            const label = none ? p.none || "(none)" : String(r.key);
            return h("tr", {},
              styled(h("td", { class: "share" },
                none ? h("span", { class: "muted" }, label) : h("a", { href: link(r.key), title: `open the tool with ${p.field} = ${label}` }, label)),
              { "--share": `${(100 * r.value / top).toFixed(1)}%` }),
              h("td", { class: "num" }, fmt(r.value)));
          })))
        : h("p", { class: "muted" }, "Nothing in this range."));
  }

  kit.views.overview = overview;
})();

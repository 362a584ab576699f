// The dashboard's journey tools: funnels, retention and user paths. Each is a view of one API
// call (/api/v1/funnel, /api/v1/retention, /api/v1/paths) whose controls live in the URL, so a
// link reopens the same question. Built with the kit app.js shares (`window.footfallKit`).
"use strict";
(() => {
  const kit = window.footfallKit;
  const { h, api, go, show, loading, select, botsSwitch, fmt, seconds } = kit;
  const pct = (x) => `${(100 * x).toFixed(1)} %`;
  const span = (s) => (s >= 86400 ? `${fmt(s / 86400)} ${s === 86400 ? "day" : "days"}` : seconds(s));
  // Styles set through the CSS object model: the dashboard's Content-Security-Policy refuses
  // inline style attributes.
  const styled = (el, props) => {
    for (const [k, v] of Object.entries(props)) el.style.setProperty(k, String(v));
    return el;
  };
  const RANGES = [["7d", "last 7 days"], ["30d", "last 30 days"], ["90d", "last 90 days"]];

  // Errors stay in place under the controls, so a bad choice can be undone from the page.
  async function answer(path, params, controls, render) {
    const out = h("div", { id: "result" }, h("p", { class: "muted" }, "Loading…"));
    show(controls, out);
    try {
      out.replaceChildren(render(await api(`${path}?${params}`)));
    } catch (e) {
      if (e.message !== "unauthorized") out.replaceChildren(h("p", { class: "error", id: "error" }, e.message));
    }
  }

  function setter(view, params) {
    return (k) => (v) => {
      const p = new URLSearchParams(params);
      if (v) p.set(k, v); else p.delete(k);
      go(view, p);
    };
  }

  // Event names, and page views of the most visited paths, as step choices.
  async function stepChoices() {
    const [events, paths] = await Promise.all([
      api("/api/v1/events?last=90d"),
      api("/api/v1/properties/values?field=path&last=90d"),
    ]);
    return [
      ...events.events.map((e) => [e.name, e.name]),
      ...paths.values.filter((v) => v.value).slice(0, 30).map((v) => [`$pageview:${v.value}`, `page ${v.value}`]),
    ];
  }

  // ---- funnels ----
  async function funnel(params) {
    if (!params.get("last") && !params.get("from")) params.set("last", "30d");
    if (params.getAll("step").length < 2) {
      params.delete("step");
      for (const s of ["$pageview", "purchase"]) params.append("step", s);
    }
    loading("the funnel");
    let choices, opts;
    try {
      [choices, opts] = await Promise.all([stepChoices(), kit.options()]);
    } catch (e) {
      return kit.failed(e);
    }
    const set = setter("funnel", params);
    const steps = params.getAll("step");
    const withSteps = (list) => {
      const p = new URLSearchParams(params);
      p.delete("step");
      list.forEach((s) => p.append("step", s));
      go("funnel", p);
    };
    const known = (s) => (choices.some(([v]) => v === s) ? choices : [[s, s], ...choices]);
    const controls = h("div", { class: "card controls" },
      h("div", { class: "steps" }, steps.map((s, i) => h("span", { class: "step" },
        select("step", `Step ${i + 1}`, known(s), s, (v) => withSteps(steps.map((x, j) => (j === i ? v : x)))),
        steps.length > 2 ? h("button", { title: "remove step", onclick: () => withSteps(steps.filter((_, j) => j !== i)) }, "×") : null))),
      steps.length < 10 ? h("button", { id: "add-step", onclick: () => withSteps([...steps, choices[0]?.[0] || "$pageview"]) }, "Add step") : null,
      select("window", "Within", [["1h", "1 hour"], ["1d", "1 day"], ["7d", "7 days"], ["14d", "14 days"], ["30d", "30 days"]], params.get("window") || "14d", set("window")),
      select("last", "Step 1 during", RANGES, params.get("last") || "", set("last")),
      select("by", "Break down by", [["", "nothing"], ...opts.fields.map((f) => [f, f])], params.get("by") || "", set("by")),
      botsSwitch("funnel", params));
    await answer("/api/v1/funnel", params, controls, (a) => {
      const first = a.steps[0]?.count || 0;
      return h("div", { class: "card" },
        h("p", { class: "muted" }, `${fmt(first)} people started; ${pct(a.steps[a.steps.length - 1].conversion)} did every step within ${span(a.window_seconds)}.`),
        h("table", { id: "funnel" },
          h("thead", {}, h("tr", {}, ["step", "", "people", "of step 1", "of the step before", "median time from the step before", ""].map((t, i) => h("th", { class: i > 1 ? "num" : "" }, t)))),
          h("tbody", {}, a.steps.map((s, i) => h("tr", {},
            h("td", {}, `${i + 1}. ${s.name}`),
            h("td", { class: "barcell" }, styled(h("div", { class: "bar" }), { width: `${first ? (100 * s.count) / first : 0}%` })),
            h("td", { class: "num" }, fmt(s.count)),
            h("td", { class: "num" }, pct(s.conversion)),
            h("td", { class: "num" }, i ? pct(s.from_previous) : "–"),
            h("td", { class: "num" }, s.median_seconds_from_previous == null ? "–" : seconds(s.median_seconds_from_previous)),
            h("td", { class: "num" }, h("a", { class: "dropped", href: droppedHref(params, i + 1) }, i + 1 < a.steps.length ? "who stopped here" : "who did every step")))))),
        a.breakdown ? h("div", { class: "scroll" }, h("h3", {}, `By ${a.by}`), h("table", { id: "breakdown" },
          h("thead", {}, h("tr", {}, h("th", {}, a.by), a.steps.map((s, i) => h("th", { class: "num" }, `${i + 1}. ${s.name}`)), h("th", { class: "num" }, "converted"))),
          h("tbody", {}, a.breakdown.map((row) => h("tr", {},
            h("td", {}, row.key ?? "(none)"),
            row.steps.map((s) => h("td", { class: "num" }, fmt(s.count))),
            h("td", { class: "num" }, pct(row.steps[row.steps.length - 1].conversion))))))) : null);
    });
  }

  // The users feed of the people who stopped after step `k` (the funnel's own parameters).
  function droppedHref(params, k) {
    const p = new URLSearchParams();
    for (const key of ["step", "window", "last", "from", "to", "tz", "site", "bots", "filter"]) params.getAll(key).forEach((v) => p.append(key, v));
    p.set("dropped_after", k);
    return `#users?${p}`;
  }

  // ---- retention ----
  async function retention(params) {
    if (!params.get("last") && !params.get("from")) params.set("last", "30d");
    loading("retention");
    let choices;
    try {
      choices = await stepChoices();
    } catch (e) {
      return kit.failed(e);
    }
    const set = setter("retention", params);
    const any = [["", "any event"], ...choices];
    const controls = h("div", { class: "card controls" },
      select("start_event", "Starting with", any, params.get("start_event") || "", set("start_event")),
      select("return_event", "Coming back to", any, params.get("return_event") || "", set("return_event")),
      select("interval", "By", [["day", "day"], ["week", "week"]], params.get("interval") || "day", set("interval")),
      select("last", "During", RANGES, params.get("last") || "", set("last")),
      botsSwitch("retention", params));
    await answer("/api/v1/retention", params, controls, (a) => {
      const periods = a.cohorts.length;
      const unit = a.interval === "week" ? "week" : "day";
      return h("div", { class: "card scroll" }, h("table", { id: "retention", class: "grid" },
        h("thead", {}, h("tr", {}, h("th", {}, "cohort"), h("th", { class: "num" }, "people"),
          Array.from({ length: periods }, (_, k) => h("th", { class: "num" }, `${unit} ${k}`)))),
        h("tbody", {}, a.cohorts.map((c) => h("tr", {},
          h("td", {}, new Date(c.start).toLocaleDateString()),
          h("td", { class: "num" }, fmt(c.size)),
          c.values.map((v, k) => {
            const share = c.size ? v / c.size : 0;
            return styled(h("td", { class: "num cell", title: `${fmt(v)} of ${fmt(c.size)}` }, k === 0 ? fmt(v) : c.size ? pct(share) : "–"), { "--share": share });
          }))))));
    });
  }

  // ---- user paths ----
  async function paths(params) {
    if (!params.get("last") && !params.get("from")) params.set("last", "7d");
    const set = setter("paths", params);
    const type = params.get("type") || "pages";
    const controls = h("div", { class: "card controls" },
      h("form", {
        class: "controls",
        onsubmit: (e) => {
          e.preventDefault();
          set("start")(e.target.elements.start.value.trim());
        },
      }, h("label", {}, "Start at", h("input", { name: "start", value: params.get("start") || "$pageview", size: 22 })), h("button", { type: "submit" }, "Go")),
      select("direction", "Show", [["after", "what came after"], ["before", "what came before"]], params.get("direction") || "after", set("direction")),
      select("type", "Steps", [["pages", "pages"], ["events", "every event"]], type, set("type")),
      select("depth", "Depth", ["2", "3", "4", "5", "6"].map((d) => [d, d]), params.get("depth") || "4", set("depth")),
      select("last", "During", [["1d", "last 24 hours"], ...RANGES], params.get("last") || "", set("last")),
      botsSwitch("paths", params));
    await answer("/api/v1/paths", params, controls, (a) => h("div", {},
      h("div", { class: "card" }, h("p", { class: "muted" }, `${fmt(a.sessions)} sessions`), flow(a)),
      h("div", { class: "card" }, h("table", { id: "paths" },
        h("thead", {}, h("tr", {}, h("th", {}, "path"), h("th", { class: "num" }, "sessions"))),
        h("tbody", {}, a.paths.map((p) => h("tr", {}, h("td", {}, p.steps.join(" → ")), h("td", { class: "num" }, fmt(p.count)))))))));
  }

  // A flow chart: a column per depth, a box per label (height by sessions), and a band from
  // each box to the next column's for the sessions that went that way.
  function flow(a) {
    const NS = "http://www.w3.org/2000/svg";
    const s = (tag, attrs, ...kids) => {
      const el = document.createElementNS(NS, tag);
      for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
      kids.forEach((c) => el.append(c));
      return el;
    };
    const cols = a.nodes.map((level) => level.slice(0, 8));
    const colW = 150, gap = 70, height = 320, pad = 6;
    const width = cols.length * colW + (cols.length - 1) * gap;
    const total = Math.max(1, a.sessions);
    const at = cols.map((level, d) => {
      let y = 0;
      const pos = {};
      const scale = (height - pad * level.length) / total;
      for (const n of level) {
        const hgt = Math.max(3, n.count * scale);
        pos[n.label] = { x: d * (colW + gap), y, h: hgt, used: 0, in: 0 };
        y += hgt + pad;
      }
      return pos;
    });
    const svg = s("svg", { id: "flow", viewBox: `0 0 ${width} ${height}`, width, height, role: "img" });
    for (const l of a.links) {
      const from = at[l.depth]?.[l.from], to = at[l.depth + 1]?.[l.to];
      if (!from || !to) continue;
      const scale = (height - pad * cols[l.depth].length) / total;
      const w = Math.max(1, l.count * scale);
      const y1 = from.y + from.used + w / 2, y2 = to.y + to.in + w / 2;
      from.used += w;
      to.in += w;
      const x1 = from.x + colW, x2 = to.x, mid = (x1 + x2) / 2;
      svg.append(s("path", { class: "link", d: `M${x1},${y1} C${mid},${y1} ${mid},${y2} ${x2},${y2}`, "stroke-width": w },
        s("title", {}, `${l.from} → ${l.to}: ${l.count}`)));
    }
    cols.forEach((level, d) => level.forEach((n) => {
      const p = at[d][n.label];
      svg.append(s("g", { class: "node" },
        s("rect", { x: p.x, y: p.y, width: colW, height: p.h, rx: 3 }),
        s("text", { x: p.x + 6, y: p.y + Math.min(p.h, 24) / 2 + 4 }, `${n.label.length > 18 ? `${n.label.slice(0, 17)}…` : n.label} · ${fmt(n.count)}`)));
    }));
    return h("div", { class: "scroll" }, svg);
  }

  kit.views.funnel = funnel;
  kit.views.retention = retention;
  kit.views.paths = paths;
})();

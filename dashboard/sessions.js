// One session's page, `#session/{id}`: where and on what it ran, then its events in order with
// their properties as readable key/value lists (GET /api/v1/sessions/{id}). Opened from a
// person's sessions. Built with the kit app.js shares (`window.footfallKit`).
"use strict";
(() => {
  const kit = window.footfallKit;
  const { h, api, show, loading, failed, seconds, when, propList, userHref } = kit;

  async function session(params, parts) {
    const id = parts[1] || "";
    loading("the session");
    const q = new URLSearchParams();
    for (const k of ["bots", "site"]) params.getAll(k).forEach((v) => q.append(k, v));
    let s;
    try {
      s = (await api(`/api/v1/sessions/${encodeURIComponent(id)}${[...q].length ? `?${q}` : ""}`)).session;
    } catch (e) {
      return failed(e);
    }
    const place = [s.city, s.region, s.country].filter(Boolean).join(", ");
    const facts = [
      ["started", when(s.started_at)],
      ["ended", when(s.ended_at)],
      ["length", seconds(s.duration_seconds || 0)],
      ["events", String(s.events.length)],
      ["site", s.site],
      ["browser", [s.browser, s.browser_version].filter(Boolean).join(" ")],
      ["OS", s.os],
      ["device", s.device],
      ["place", place],
      ["entry page", s.events.find((e) => e.type === "page")?.path],
    ].filter(([, v]) => v != null && v !== "");
    const person = s.user_id || s.anonymous_id;
    show(
      h("div", { class: "card" },
        h("h2", { id: "session-id" }, "Session ", h("code", {}, s.session_id)),
        person ? h("p", {}, "Visitor: ", h("a", { href: userHref(person, params), id: "session-user" }, person)) : null,
        h("dl", { class: "kv", id: "session-facts" }, facts.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]))),
      h("div", { class: "card scroll" },
        h("h3", {}, "Events in order"),
        h("table", { id: "session-events" },
          h("thead", {}, h("tr", {}, ["time", "event", "page", "properties"].map((t) => h("th", {}, t)))),
          h("tbody", {}, s.events.map((e) => h("tr", {},
            h("td", { class: "nowrap" }, when(e.timestamp, null, "time")),
            h("td", {}, e.name),
            h("td", {}, e.path || e.url || "—"),
            h("td", {}, propList(e.props))))))));
  }

  kit.views.session = session;
})();

// A small HTTP gateway on 127.0.0.1 in front of the collector, for the cross-engine suite and
// bench/engines.mjs: the pages' script tag and endpoint point at it, so every request of the
// SDK goes through it whatever the engine (no driver needs to intercept requests, and beacons
// sent by a page that is closing are seen too). It records every POST /v1/batch (events,
// answer, when) and can answer 5xx/429 instead of the collector; everything else is passed on.
import { createServer } from "node:http";
import { gunzipSync } from "node:zlib";

const HOP = new Set(["host", "connection", "keep-alive", "content-length", "transfer-encoding", "expect"]);

function decode(raw) {
  for (const text of [() => raw.toString("utf8"), () => gunzipSync(raw).toString("utf8")]) {
    try {
      const body = JSON.parse(text());
      return Array.isArray(body?.events) ? body.events : [];
    } catch { /* next */ }
  }
  return [];
}

/**
 * The collector's CORS headers on a refusal to a page of another origin: without them the page
 * could read neither the status nor Retry-After, only a network failure.
 */
function cors(origin) {
  return origin
    ? {
      "access-control-allow-origin": origin, "access-control-allow-credentials": "true",
      "access-control-expose-headers": "Retry-After", "vary": "Origin",
    }
    : {};
}

/**
 * `gw.answer`, if set, is called with each batch's record ({ events, at }) and answers
 * `undefined` (pass it on to the collector) or `{ status, headers }` (answered by the gateway).
 */
export async function startGateway(target) {
  const gw = {
    target,
    answer: null,
    /** Every POST /v1/batch: { events, at (ms), status, answeredAt (ms) } */
    batches: [],
    /** The events of the batches that carried an event named `name`, one entry per copy sent. */
    sent(name) {
      return gw.batches.flatMap((b) => b.events.filter((e) => e.name === name));
    },
  };
  async function handle(req, res) {
    const chunks = [];
    for await (const c of req) chunks.push(c);
    const raw = Buffer.concat(chunks);
    const path = new URL(req.url, "http://gateway").pathname;
    let rec = null;
    if (req.method === "POST" && path === "/v1/batch") {
      rec = { events: decode(raw), at: Date.now(), status: null, answeredAt: null };
      gw.batches.push(rec);
      const own = gw.answer?.(rec);
      if (own) {
        rec.status = own.status;
        res.writeHead(own.status, { "content-type": "application/json", ...cors(req.headers.origin), ...own.headers });
        res.end(JSON.stringify({ error: { code: own.status === 429 ? "rate-limited" : "unavailable", message: "test gateway" } }));
        rec.answeredAt = Date.now();
        return;
      }
    }
    const headers = {};
    for (const [k, v] of Object.entries(req.headers)) if (!HOP.has(k)) headers[k] = v;
    const r = await fetch(gw.target + req.url, {
      method: req.method, headers, redirect: "manual",
      body: req.method === "GET" || req.method === "HEAD" ? undefined : raw,
    });
    const body = Buffer.from(await r.arrayBuffer());
    const out = {};
    r.headers.forEach((v, k) => {
      // fetch() has decoded the body already.
      if (!HOP.has(k) && k !== "content-encoding") out[k] = v;
    });
    res.writeHead(r.status, out);
    res.end(body);
    if (rec) {
      rec.status = r.status;
      rec.answeredAt = Date.now();
    }
  }
  const server = createServer((req, res) => {
    handle(req, res).catch((e) => {
      try {
        res.writeHead(502, { "content-type": "text/plain" }).end(String(e));
      } catch { /* the client left */ }
    });
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  gw.url = `http://127.0.0.1:${server.address().port}`;
  gw.close = () => {
    server.closeAllConnections?.();
    return new Promise((r) => server.close(r));
  };
  return gw;
}

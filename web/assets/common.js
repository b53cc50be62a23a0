// Shared helpers of the hashpool dashboards: fetching, formatting, tables and an SVG chart.
// No libraries: everything the pages need is in this file and is served by the role itself.
"use strict";

const hp = (() => {
  // A wallet page exposed beyond localhost needs the configured token: it is taken once from
  // `?token=` and kept for the tab only.
  const params = new URLSearchParams(location.search);
  if (params.has("token")) {
    sessionStorage.setItem("hashpool-token", params.get("token"));
    params.delete("token");
    const q = params.toString();
    history.replaceState(null, "", location.pathname + (q ? "?" + q : ""));
  }
  const headers = () => {
    const h = { "Content-Type": "application/json" };
    const t = sessionStorage.getItem("hashpool-token");
    if (t) h.Authorization = "Bearer " + t;
    return h;
  };

  async function request(method, url, body) {
    const r = await fetch(url, { method, headers: headers(), body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await r.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (_) { data = { detail: text }; }
    if (!r.ok) {
      const why = data && (data.detail || data.reason || data.error) ? (data.detail || data.reason || data.error) : r.statusText;
      throw new Error(why + " (HTTP " + r.status + ")");
    }
    return data;
  }

  const units = ["H/s", "kH/s", "MH/s", "GH/s", "TH/s", "PH/s", "EH/s", "ZH/s"];
  function hashrate(h) {
    if (!isFinite(h) || h <= 0) return "0 H/s";
    let i = 0;
    while (h >= 1000 && i < units.length - 1) { h /= 1000; i++; }
    return h.toFixed(h >= 100 ? 0 : h >= 10 ? 1 : 2) + " " + units[i];
  }
  const int = (n) => (n === null || n === undefined) ? "–" : Number(n).toLocaleString("en-US");
  const btc = (sat) => (sat / 1e8).toFixed(8) + " BTC";
  function ago(ms) {
    if (!ms) return "never";
    const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
    if (s < 60) return s + " s ago";
    if (s < 3600) return Math.floor(s / 60) + " min ago";
    if (s < 86400) return Math.floor(s / 3600) + " h ago";
    return Math.floor(s / 86400) + " d ago";
  }
  const short = (hex) => hex && hex.length > 16 ? hex.slice(0, 8) + "…" + hex.slice(-8) : (hex || "–");

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") e.className = v; else e.setAttribute(k, v);
    }
    for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    return e;
  }
  const badge = (text, kind) => el("span", { class: "badge " + kind }, text);
  function text(id, value) { const e = document.getElementById(id); if (e) e.textContent = value; }

  // Fills a <tbody> from rows; each column is [header-class, cell(row) -> string|Node].
  function fill(tbodyId, rows, columns, emptyText) {
    const body = document.getElementById(tbodyId);
    if (!body) return;
    body.replaceChildren();
    if (!rows.length) {
      body.append(el("tr", {}, el("td", { class: "empty", colspan: String(columns.length) }, emptyText || "none")));
      return;
    }
    for (const r of rows) {
      body.append(el("tr", {}, ...columns.map(([cls, cell]) => el("td", { class: cls || "" }, cell(r)))));
    }
  }

  // Line chart of [t_ms, value] points into an <svg class="chart">, with a value axis.
  function chart(svgId, points, format) {
    const svg = document.getElementById(svgId);
    if (!svg) return;
    const W = svg.clientWidth || 800, H = svg.clientHeight || 220, L = 70, B = 20, T = 10;
    svg.setAttribute("viewBox", "0 0 " + W + " " + H);
    const ns = "http://www.w3.org/2000/svg";
    const mk = (tag, a) => { const e = document.createElementNS(ns, tag); for (const k in a) e.setAttribute(k, a[k]); return e; };
    svg.replaceChildren();
    if (points.length < 2) {
      const t = mk("text", { x: W / 2 - 60, y: H / 2 }); t.textContent = "collecting samples…"; svg.append(t);
      return;
    }
    const t0 = points[0][0], t1 = points[points.length - 1][0];
    const vmax = Math.max(...points.map(p => p[1])) * 1.1 || 1;
    const x = (t) => L + (W - L - 10) * (t - t0) / Math.max(1, t1 - t0);
    const y = (v) => T + (H - T - B) * (1 - v / vmax);
    for (let i = 0; i <= 4; i++) {
      const v = vmax * i / 4;
      svg.append(mk("line", { class: "grid", x1: L, x2: W - 10, y1: y(v), y2: y(v) }));
      const label = mk("text", { x: 4, y: y(v) + 4 }); label.textContent = format(v); svg.append(label);
    }
    const span = mk("text", { x: L, y: H - 4 });
    const secs = Math.round((t1 - t0) / 1000);
    span.textContent = "last " + (secs < 120 ? secs + " s" : Math.round(secs / 60) + " min");
    svg.append(span);
    const line = points.map(p => x(p[0]).toFixed(1) + "," + y(p[1]).toFixed(1)).join(" ");
    svg.append(mk("polygon", { class: "area", points: x(t0) + "," + y(0) + " " + line + " " + x(t1) + "," + y(0) }));
    svg.append(mk("polyline", { class: "line", points: line }));
  }

  // Runs `fn` now and every `ms`; shows a banner while it fails.
  function every(ms, fn) {
    const banner = document.getElementById("banner");
    const run = async () => {
      try {
        await fn();
        if (banner) banner.classList.remove("shown");
        text("updated", "updated " + new Date().toLocaleTimeString());
      } catch (e) {
        if (banner) { banner.textContent = "Cannot reach the server: " + e.message; banner.classList.add("shown"); }
      }
    };
    run();
    return setInterval(run, ms);
  }

  return { get: (u) => request("GET", u), post: (u, b) => request("POST", u, b), hashrate, int, btc, ago,
           short, el, badge, text, fill, chart, every };
})();

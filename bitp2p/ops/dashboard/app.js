// bitp2p dashboard: polls ./state and keeps the page up to date.
// No dependencies, no build step. Untrusted text (node ids, user agents,
// addresses) only ever goes into the page through textContent/attributes.
"use strict";

(function () {
  const POLL_MS = 1500;
  const SAMPLES = 60;
  const COLORS = ["#4fa3ff", "#f7931a", "#3fb950", "#b07cff", "#ff7b72", "#39c5cf", "#e3b341", "#db61a2"];
  const SVG = "http://www.w3.org/2000/svg";

  // message type -> [{t, messages}] (cumulative counts, in + out)
  const series = new Map();
  const times = [];
  let seenPeers = null;
  let timer = null;

  function $(id) { return document.getElementById(id); }

  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function svg(tag, attrs, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function ago(then, now) {
    if (then === null || then === undefined) return "-";
    const s = Math.max(0, Math.floor(now - then));
    if (s < 60) return s + " s";
    if (s < 3600) return Math.floor(s / 60) + " min";
    return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
  }

  function size(n) {
    if (n < 1000) return n + " B";
    const units = ["kB", "MB", "GB"];
    let v = n / 1000;
    for (let i = 0; i < units.length; i++) {
      if (v < 1000 || i === units.length - 1) return v.toFixed(1) + " " + units[i];
      v /= 1000;
    }
  }

  function ping(rtt) { return rtt === null || rtt === undefined ? "-" : (rtt * 1000).toFixed(1) + " ms"; }

  function replaceRows(tbody, rows, empty, columns) {
    tbody.replaceChildren();
    if (!rows.length) {
      const tr = el("tr", { class: "empty" });
      tr.appendChild(el("td", { colspan: String(columns) }, empty));
      tbody.appendChild(tr);
      return;
    }
    for (const tr of rows) tbody.appendChild(tr);
  }

  // -- the cards ------------------------------------------------------------

  function renderNode(state) {
    const n = state.node;
    const facts = [
      ["Node id", n.id, "nodeid"],
      ["Listening", n.listening || "not listening"],
      ["Uptime", ago(state.now - n.uptime, state.now)],
      ["Network", n.network],
      ["TLS", n.tls ? "on" : "off"],
      ["User agent", n.user_agent],
      ["Peers", state.peers.length],
      ["Known addresses", state.known_total],
    ];
    const dl = $("node");
    dl.replaceChildren();
    for (const [k, v, cls] of facts) {
      dl.appendChild(el("dt", {}, k));
      const dd = el("dd");
      if (cls) dd.appendChild(el("code", { class: cls }, v)); else dd.textContent = String(v);
      dl.appendChild(dd);
    }
    document.title = "bitp2p " + n.id.slice(0, 12);
  }

  function renderBans(state) {
    const rows = state.bans.map((b) => {
      const tr = el("tr");
      tr.appendChild(el("td", {}, b.subnet));
      tr.appendChild(el("td", {}, b.until === null ? "-" : ago(state.now, b.until) + " left"));
      return tr;
    });
    replaceRows(document.querySelector("#bans tbody"), rows, "No bans.", 2);
    $("ban-count").textContent = String(state.bans.length);
  }

  function renderPeers(state) {
    const ids = new Set(state.peers.map((p) => p.node_id));
    const rows = state.peers.map((p) => {
      const tr = el("tr", { "data-node-id": p.node_id });
      if (seenPeers !== null && !seenPeers.has(p.node_id)) tr.classList.add("fresh");
      const id = el("td");
      id.appendChild(el("code", { title: p.node_id }, p.node_id.slice(0, 16)));
      tr.appendChild(id);
      tr.appendChild(el("td", {}, p.address || p.remote));
      const dir = el("td");
      dir.appendChild(el("span", { class: "tag " + p.direction }, p.direction));
      tr.appendChild(dir);
      tr.appendChild(el("td", {}, p.kind));
      const agent = el("td", { class: "agent", title: p.agent || "" }, p.agent);
      if (p.detail) {
        agent.appendChild(el("br"));
        agent.appendChild(el("small", { class: "detail" }, p.detail));
      }
      tr.appendChild(agent);
      tr.appendChild(el("td", {}, ago(p.since, state.now)));
      tr.appendChild(el("td", { class: "num" }, ping(p.ping)));
      tr.appendChild(el("td", { class: "num" }, size(p.bytes_in)));
      tr.appendChild(el("td", { class: "num" }, size(p.bytes_out)));
      const action = el("td");
      const form = el("form", { method: "post", action: "disconnect", class: "inline" });
      form.appendChild(el("input", { type: "hidden", name: "node_id", value: p.node_id }));
      form.appendChild(el("button", { type: "submit", class: "danger small" }, "Disconnect"));
      form.addEventListener("submit", submit);
      action.appendChild(form);
      tr.appendChild(action);
      return tr;
    });
    seenPeers = ids;
    replaceRows(document.querySelector("#peers tbody"), rows, "No peers yet.", 10);
    $("peer-count").textContent = String(state.peers.length);
  }

  function renderKnown(state) {
    const rows = state.known.map((k) => {
      const tr = el("tr");
      tr.appendChild(el("td", {}, k.address));
      const table = el("td");
      table.appendChild(el("span", { class: "tag " + k.table }, k.table));
      tr.appendChild(table);
      tr.appendChild(el("td", {}, ago(k.heard, state.now)));
      tr.appendChild(el("td", {}, ago(k.last_seen, state.now)));
      tr.appendChild(el("td", {}, ago(k.last_success, state.now)));
      tr.appendChild(el("td", {}, k.source === k.address ? "itself / us" : k.source || "-"));
      return tr;
    });
    replaceRows(document.querySelector("#known tbody"), rows, "No known addresses.", 6);
    $("known-count").textContent = String(state.known_total);
  }

  // -- traffic over time ----------------------------------------------------

  function recordTraffic(state) {
    const counts = new Map();
    for (const t of state.traffic) counts.set(t.type, (counts.get(t.type) || 0) + t.messages);
    times.push(state.now);
    for (const type of counts.keys()) if (!series.has(type)) series.set(type, times.slice(0, -1).map(() => null));
    for (const [type, values] of series) values.push(counts.has(type) ? counts.get(type) : (values[values.length - 1] || 0));
    while (times.length > SAMPLES + 1) {
      times.shift();
      for (const values of series.values()) values.shift();
    }
  }

  function renderTraffic() {
    const chart = $("traffic");
    // The view box is the chart's size in CSS pixels, so that its 12 px
    // labels are 12 px whatever the width of the card.
    const W = pixels(chart, 640), H = 220, L = 44, R = 12, T = 12, B = 24;
    chart.setAttribute("viewBox", "0 0 " + W + " " + H);
    chart.replaceChildren();
    const types = [...series.keys()].sort();
    // messages/s between successive samples
    const rates = new Map();
    let max = 1;
    for (const type of types) {
      const v = series.get(type);
      const r = [];
      for (let i = 1; i < v.length; i++) {
        const dt = times[i] - times[i - 1];
        const rate = v[i] !== null && v[i - 1] !== null && dt > 0 ? Math.max(0, (v[i] - v[i - 1]) / dt) : 0;
        r.push(rate);
        max = Math.max(max, rate);
      }
      rates.set(type, r);
    }
    const x = (i) => L + (i / (SAMPLES - 1)) * (W - L - R);
    const y = (v) => H - B - (v / max) * (H - T - B);
    for (let k = 0; k <= 4; k++) {
      const v = (max * k) / 4;
      chart.appendChild(svg("line", { class: "grid-line", x1: L, x2: W - R, y1: y(v), y2: y(v) }));
      chart.appendChild(svg("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end" }, v < 10 ? v.toFixed(1) : Math.round(v)));
    }
    chart.appendChild(svg("line", { class: "axis", x1: L, x2: L, y1: T, y2: H - B }));
    chart.appendChild(svg("line", { class: "axis", x1: L, x2: W - R, y1: H - B, y2: H - B }));
    chart.appendChild(svg("text", { x: W - R, y: H - 6, "text-anchor": "end" }, "now"));
    chart.appendChild(svg("text", { x: L, y: H - 6 }, "-" + Math.round((SAMPLES * POLL_MS) / 1000) + " s"));
    const legend = $("traffic-legend");
    legend.replaceChildren();
    types.forEach((type, n) => {
      const r = rates.get(type);
      const offset = SAMPLES - r.length;
      const points = r.map((v, i) => x(i + offset).toFixed(1) + "," + y(v).toFixed(1)).join(" ");
      const color = COLORS[n % COLORS.length];
      if (r.length > 1) chart.appendChild(svg("polyline", { class: "series", points: points, stroke: color, "data-type": type }));
      else if (r.length === 1) chart.appendChild(svg("circle", { cx: x(SAMPLES - 1), cy: y(r[0]), r: 3, fill: color }));
      const item = el("span");
      item.appendChild(el("span", { class: "sw c" + (n % COLORS.length) }));
      const values = series.get(type);
      item.appendChild(document.createTextNode(type + " (" + (values[values.length - 1] || 0) + ")"));
      legend.appendChild(item);
    });
    if (!types.length) chart.appendChild(svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle" }, "No messages yet."));
  }

  // -- the network graph ----------------------------------------------------

  function renderGraph(state) {
    const graph = $("graph");
    const W = pixels(graph, 960), H = 420, cx = W / 2, cy = H / 2;
    graph.setAttribute("viewBox", "0 0 " + W + " " + H);
    graph.replaceChildren();
    const nodes = state.graph.nodes;
    const self = nodes.filter((n) => n.kind === "self");
    const peers = nodes.filter((n) => n.kind === "peer").sort((a, b) => a.id.localeCompare(b.id));
    const outer = nodes.filter((n) => n.kind === "known" || n.kind === "source").sort((a, b) => a.id.localeCompare(b.id)).slice(0, 120);
    const pos = new Map();
    for (const n of self) pos.set(n.id, [cx, cy]);
    const ring = (list, rx, ry, phase) => list.forEach((n, i) => {
      const a = phase + (2 * Math.PI * i) / Math.max(1, list.length) - Math.PI / 2;
      pos.set(n.id, [cx + rx * Math.cos(a), cy + ry * Math.sin(a)]);
    });
    ring(peers, Math.min(170, W * 0.18), 105, 0);
    ring(outer, W * 0.42, 180, Math.PI / Math.max(2, outer.length));
    const edges = svg("g", { class: "edges" });
    for (const e of state.graph.edges) {
      const a = pos.get(e.from), b = pos.get(e.to);
      if (!a || !b) continue;
      edges.appendChild(svg("line", { class: "edge " + e.kind, x1: a[0], y1: a[1], x2: b[0], y2: b[1] }));
    }
    graph.appendChild(edges);
    const layer = svg("g", { class: "nodes" });
    const draw = (n, r, label) => {
      const p = pos.get(n.id);
      const g = svg("g", { class: "node" });
      const c = svg("circle", { class: n.kind, cx: p[0].toFixed(1), cy: p[1].toFixed(1), r: r, "data-id": n.id });
      c.appendChild(svg("title", {}, n.kind + ": " + n.label + (n.node_id ? " (node " + n.node_id.slice(0, 16) + ")" : "")));
      g.appendChild(c);
      if (label) g.appendChild(svg("text", { x: p[0].toFixed(1), y: (p[1] + r + 13).toFixed(1), "text-anchor": "middle" }, label));
      layer.appendChild(g);
    };
    for (const n of outer) draw(n, 5, outer.length <= 16 ? n.label : null);
    for (const n of peers) draw(n, 11, n.label);
    for (const n of self) draw(n, 17, "me " + n.label);
    graph.appendChild(layer);
  }

  // -- polling and forms ----------------------------------------------------

  // The width of an SVG in CSS pixels (its view box is made that wide).
  function pixels(node, fallback) {
    const width = Math.round(node.getBoundingClientRect().width);
    return width > 0 ? width : fallback;
  }

  // ok: true (live), "auth" (the node wants credentials again: it was
  // restarted with a new cookie), or false (no answer).
  function live(ok, why) {
    $("live").className = "dot " + (ok === true ? "live" : "down");
    $("live-text").textContent = ok === true ? "live"
      : ok === "auth" ? "credentials needed: reload the page to log in again"
      : "disconnected" + (why ? " (" + why + ")" : "");
    const hint = $("graph-hint");
    if (hint && ok !== true) {
      hint.textContent = ok === "auth"
        ? "The node wants credentials: reload the page to log in."
        : "No answer from the node.";
    }
  }

  async function poll() {
    clearTimeout(timer);
    try {
      const response = await fetch("state", { cache: "no-store", credentials: "same-origin" });
      if (response.status === 401) {
        live("auth");
        timer = setTimeout(poll, POLL_MS);
        return;
      }
      if (!response.ok) throw new Error("HTTP " + response.status);
      const state = await response.json();
      recordTraffic(state);
      renderNode(state);
      renderBans(state);
      renderPeers(state);
      renderKnown(state);
      renderTraffic();
      renderGraph(state);
      live(true);
    } catch (e) {
      live(false, e.message);
    }
    timer = setTimeout(poll, POLL_MS);
  }

  function flash(message, ok) {
    const p = $("flash");
    if (!p) return;
    p.hidden = !message;
    p.textContent = message || "";
    p.className = "flash " + (ok ? "ok" : "error");
  }

  // Forms are posted with fetch (keeping the chart's history); without
  // JavaScript they are ordinary form posts.
  async function submit(event) {
    event.preventDefault();
    const form = event.currentTarget;
    const button = form.querySelector("button");
    if (button) button.disabled = true;
    try {
      const response = await fetch(form.getAttribute("action"), {
        method: "POST",
        body: new URLSearchParams(new FormData(form)),
        credentials: "same-origin",
      });
      const query = new URL(response.url).searchParams;
      if (query.has("msg")) flash(query.get("msg"), query.get("ok") === "1");
      else flash(response.ok ? "" : "HTTP " + response.status, response.ok);
      if (response.ok && query.get("ok") === "1" && form.id) form.reset();
    } catch (e) {
      flash("Request failed: " + e, false);
    } finally {
      if (button) button.disabled = false;
    }
    poll();
  }

  document.addEventListener("DOMContentLoaded", () => {
    for (const form of document.querySelectorAll("form")) form.addEventListener("submit", submit);
    // Drop the flash message from the address bar (a reload would show it again).
    if (location.search) history.replaceState(null, "", location.pathname);
    const hint = $("graph-hint");
    if (hint) hint.textContent = "Loading...";
    poll();
  });
})();

// The lab's page: polls the lab's JSON API, draws the graph (a circle
// layout, in SVG, no library), keeps the event feed, and posts actions.
"use strict";
(function () {
  const SVG = "http://www.w3.org/2000/svg";
  const MAX_EVENTS_SHOWN = 500;
  const $ = (id) => document.getElementById(id);
  let state = null;
  let selected = null;
  let lastSeq = 0;
  let paused = false;
  const feed = [];     // events received, newest last (bounded)
  let failures = 0;

  function el(name, attrs, text) {
    const node = document.createElementNS(SVG, name);
    for (const k in attrs || {}) node.setAttribute(k, attrs[k]);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function flash(message, ok) {
    const box = $("flash");
    box.textContent = message;
    box.className = "flash" + (ok ? "" : " error");
    box.hidden = false;
    clearTimeout(flash.timer);
    flash.timer = setTimeout(() => { box.hidden = true; }, ok ? 4000 : 8000);
  }

  async function act(action, body) {
    try {
      const r = await fetch("api/" + action, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body || {}),
      });
      const answer = await r.json();
      flash(answer.message, answer.ok);
    } catch (e) {
      flash("The lab does not answer: " + e, false);
    }
    refresh();
  }

  // -- the graph ------------------------------------------------------------
  function positions(nodes) {
    const out = {};
    const n = nodes.length;
    const cx = 320, cy = 210, r = n <= 1 ? 0 : Math.min(170, 60 + n * 18);
    nodes.forEach((node, i) => {
      const a = -Math.PI / 2 + (2 * Math.PI * i) / Math.max(n, 1);
      out[node.port] = [cx + r * Math.cos(a), cy + r * Math.sin(a)];
    });
    return out;
  }

  function litBy() {
    // The newest broadcast, while under 15 s old: port -> hop.
    if (!state || !state.broadcasts.length) return {};
    const b = state.broadcasts[0];
    if (Date.now() / 1000 - b.at > 15) return {};
    return b.reached;
  }

  function drawGraph() {
    const svg = $("graph");
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    const defs = el("defs");
    const marker = el("marker", { id: "arrow", viewBox: "0 0 10 10", refX: "10", refY: "5",
      markerWidth: "7", markerHeight: "7", orient: "auto-start-reverse" });
    marker.appendChild(el("path", { d: "M0,0 L10,5 L0,10 z", fill: "#8fa3bd" }));
    defs.appendChild(marker);
    svg.appendChild(defs);
    const nodes = state.nodes;
    if (!nodes.length) {
      svg.appendChild(el("text", { x: 320, y: 210, "text-anchor": "middle", class: "sub" },
        "No nodes yet: start one."));
      return;
    }
    const pos = positions(nodes);
    const R = 22;
    for (const link of state.links) {
      const a = pos[link.from], b = pos[link.to];
      if (!a || !b) continue;
      const dx = b[0] - a[0], dy = b[1] - a[1], d = Math.hypot(dx, dy) || 1;
      const line = el("line", {
        x1: a[0] + (dx / d) * R, y1: a[1] + (dy / d) * R,
        x2: b[0] - (dx / d) * (R + 2), y2: b[1] - (dy / d) * (R + 2),
        class: "link", "marker-end": "url(#arrow)",
        "data-from": link.from, "data-to": link.to,
      });
      line.appendChild(el("title", {}, link.from + " dialed " + link.to + " (" + link.kind + ")"));
      svg.appendChild(line);
    }
    const lit = litBy();
    for (const node of nodes) {
      const [x, y] = pos[node.port];
      const hop = lit[String(node.port)];
      const g = el("g", {
        class: "node " + node.state + (node.port === selected ? " selected" : "") + (hop ? " lit" : ""),
        tabindex: "0", role: "button", "data-port": node.port,
        "aria-label": "node " + node.port + ", " + node.state +
          (node.known !== null ? ", knows " + node.known + " addresses" : ""),
      });
      g.appendChild(el("circle", { cx: x, cy: y, r: R }));
      g.appendChild(el("text", { x: x, y: y + 4, "text-anchor": "middle" }, String(node.port)));
      const sub = node.known === null ? node.state : node.known + " addr · " + node.peers.length + " peers";
      g.appendChild(el("text", { x: x, y: y + R + 14, "text-anchor": "middle", class: "sub known" }, sub));
      if (hop) {
        g.appendChild(el("text", { x: x, y: y - R - 6, "text-anchor": "middle", class: "hop" },
          "hop " + (hop.hop === null ? "?" : hop.hop)));
        g.appendChild(el("title", {}, "received after " + hop.ms + " ms, from " + (hop.from || "itself")));
      }
      g.addEventListener("click", () => select(node.port));
      g.addEventListener("keydown", (e) => {
        if (e.key === "Enter" || e.key === " ") { e.preventDefault(); select(node.port); }
      });
      svg.appendChild(g);
    }
    const running = nodes.filter((n) => n.state === "running").length;
    $("graph-summary").textContent = nodes.length + " nodes (" + running + " running), " +
      state.links.length + " connections" + (state.partition ? ", partitioned " +
      state.partition[0].join(" ") + " | " + state.partition[1].join(" ") : "");
  }

  // -- the node list and the selects ------------------------------------------
  function fillSelect(select, nodes) {
    const keep = select.value;
    while (select.firstChild) select.removeChild(select.firstChild);
    for (const node of nodes) {
      const o = document.createElement("option");
      o.value = node.port;
      o.textContent = node.port + " (" + node.state + ")";
      select.appendChild(o);
    }
    if ([...select.options].some((o) => o.value === keep)) select.value = keep;
  }

  function drawList() {
    const list = $("node-list");
    while (list.firstChild) list.removeChild(list.firstChild);
    for (const node of state.nodes) {
      const li = document.createElement("li");
      li.dataset.port = node.port;
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = node.port + " · " + node.state + (node.known !== null ? " · " + node.known + " addr" : "");
      if (node.port === selected) b.setAttribute("aria-current", "true");
      b.addEventListener("click", () => select(node.port));
      li.appendChild(b);
      list.appendChild(li);
    }
    fillSelect($("node-select"), state.nodes);
    fillSelect($("link-a"), state.nodes);
    fillSelect($("link-b"), state.nodes);
    if (selected !== null) $("node-select").value = String(selected);
    if (!$("link-b").dataset.touched && state.nodes.length > 1 && $("link-b").value === $("link-a").value) {
      $("link-b").value = String(state.nodes[1].port);
    }
  }

  // -- the selected node ------------------------------------------------------
  function select(port) {
    selected = port;
    $("node-select").value = String(port);
    $("link-a").value = String(port);
    draw();
    showDetail();
  }

  function cell(row, text) {
    const td = document.createElement("td");
    td.textContent = text === null || text === undefined ? "-" : text;
    row.appendChild(td);
  }

  async function showDetail() {
    if (selected === null) return;
    $("detail-port").textContent = selected;
    const notShown = (text) => {
      $("detail").hidden = true;
      $("detail-empty").hidden = false;
      $("detail-empty").textContent = text;
    };
    // A node stopped or killed has no view: said without asking the lab
    // (whose answer would be an error status).
    const node = state && state.nodes.find((n) => n.port === selected);
    if (node && node.state !== "running") return notShown("node " + selected + " is " + node.state);
    let snap;
    try {
      const r = await fetch("api/node?port=" + selected);
      snap = await r.json();
      if (!r.ok) return notShown(snap.error);
    } catch (e) { return; }
    $("detail-empty").hidden = true;
    $("detail").hidden = false;
    const facts = $("detail-facts");
    facts.textContent = "";
    for (const [k, v] of [["Node id", snap.node.id], ["Listening", snap.node.listening],
      ["Peers", snap.peers.length], ["Known addresses", snap.known_total]]) {
      const dt = document.createElement("dt"); dt.textContent = k;
      const dd = document.createElement("dd"); dd.textContent = v;
      facts.append(dt, dd);
    }
    const peers = $("detail-peers").tBodies[0];
    peers.textContent = "";
    for (const p of snap.peers) {
      const row = peers.insertRow();
      cell(row, p.address || p.remote); cell(row, p.direction); cell(row, p.kind); cell(row, p.node_id.slice(0, 16));
    }
    const known = $("detail-known").tBodies[0];
    known.textContent = "";
    for (const k of snap.known) {
      const row = known.insertRow();
      cell(row, k.address); cell(row, k.table);
      cell(row, k.source === null ? "-" : k.source === k.address ? "itself / us" : k.source);
    }
  }

  function drawBroadcasts() {
    const box = $("broadcasts");
    box.textContent = "";
    if (!state.broadcasts.length) return;
    const h = document.createElement("h3");
    h.textContent = "Broadcasts";
    box.appendChild(h);
    const table = document.createElement("table");
    table.id = "broadcast-table";
    for (const b of state.broadcasts.slice(0, 5)) {
      const row = table.insertRow();
      cell(row, b.id);
      const reached = Object.entries(b.reached).sort((x, y) => (x[1].hop ?? 99) - (y[1].hop ?? 99));
      cell(row, reached.map(([port, r]) => port + ":" + (r.hop ?? "?") + " (" + r.ms + " ms)").join("  "));
    }
    box.appendChild(table);
  }

  // -- events ----------------------------------------------------------------
  function timeOf(t) {
    return new Date(t * 1000).toLocaleTimeString([], { hour12: false });
  }

  function drawEvents() {
    const list = $("events");
    const filter = $("filter").value.trim().toLowerCase();
    const shown = feed.filter((e) => !filter || e.text.toLowerCase().includes(filter));
    list.textContent = "";
    for (const e of shown.slice(-MAX_EVENTS_SHOWN).reverse()) {
      const li = document.createElement("li");
      li.className = e.kind;
      const t = document.createElement("span");
      t.className = "t";
      t.textContent = timeOf(e.t);
      li.append(t, document.createTextNode(e.text));
      list.appendChild(li);
    }
  }

  async function pollEvents() {
    // An action's refresh may overlap the loop's: each event is taken once.
    const since = lastSeq;
    const r = await fetch("api/events?since=" + since);
    const body = await r.json();
    if (body.missed && since === lastSeq) feed.push({ seq: 0, t: Date.now() / 1000, kind: "error", text: "(older events were dropped)" });
    for (const e of body.events) {
      if (e.seq <= lastSeq) continue;
      feed.push(e);
      lastSeq = e.seq;
    }
    while (feed.length > 2000) feed.shift();
    if (!paused && body.events.length) drawEvents();
  }

  // -- the loop --------------------------------------------------------------
  function draw() {
    if (!state) return;
    $("broadcast").disabled = !state.gossip;
    $("broadcast").title = state.gossip ? "" : "a " + state.network + " network carries no broadcasts";
    drawGraph();
    drawList();
    drawBroadcasts();
  }

  async function refresh() {
    try {
      const r = await fetch("api/state");
      state = await r.json();
      await pollEvents();
      failures = 0;
      $("live").className = "dot live";
      $("live-text").textContent = "live · network " + state.network;
      draw();
    } catch (e) {
      failures += 1;
      $("live").className = "dot down";
      $("live-text").textContent = "the lab does not answer";
    }
  }

  let ticks = 0;
  async function tick() {
    await refresh();
    ticks += 1;
    if (selected !== null && ticks % 2 === 0) showDetail();
    setTimeout(tick, failures ? 3000 : 1000);
  }

  function port(id) { const v = $(id).value; return v === "" ? null : Number(v); }

  document.addEventListener("DOMContentLoaded", () => {
    $("start-form").addEventListener("submit", (e) => {
      e.preventDefault();
      const v = $("start-port").value.trim();
      act("start", v ? { port: v } : {});
      $("start-port").value = "";
    });
    $("stop").addEventListener("click", () => act("stop", { port: port("node-select") }));
    $("kill").addEventListener("click", () => act("kill", { port: port("node-select") }));
    $("restart").addEventListener("click", () => act("restart", { port: port("node-select") }));
    $("node-select").addEventListener("change", () => select(port("node-select")));
    $("link-b").addEventListener("change", () => { $("link-b").dataset.touched = "1"; });
    for (const name of ["connect", "disconnect", "ban", "unban"]) {
      $(name).addEventListener("click", () => act(name, { a: port("link-a"), b: port("link-b") }));
    }
    $("partition").addEventListener("click", () => act("partition"));
    $("heal").addEventListener("click", () => act("heal"));
    $("broadcast-form").addEventListener("submit", (e) => {
      e.preventDefault();
      act("broadcast", { port: port("node-select"), text: $("broadcast-text").value });
    });
    $("filter").addEventListener("input", drawEvents);
    $("pause").addEventListener("click", () => {
      paused = !paused;
      $("pause").setAttribute("aria-pressed", String(paused));
      $("pause").textContent = paused ? "Resume" : "Pause";
      if (!paused) drawEvents();
    });
    tick();
  });
})();

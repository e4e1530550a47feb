// The status page: the figures of pwctl status and pwctl stats, and the
// last hour's history as graphs (uPlot, served by pwgated itself).
"use strict";

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  if (cls) e.className = cls;
  return e;
}

function row(table, key, value, id, bad) {
  const tr = el("tr");
  tr.appendChild(el("td", key));
  const td = el("td", value, bad ? "bad" : "");
  if (id) td.id = id;
  tr.appendChild(td);
  table.appendChild(tr);
}

function ms(seconds) {
  return (seconds * 1000).toFixed(2) + " ms";
}

function ago(t) {
  if (!t) return "never";
  return ((Date.now() - new Date(t).getTime()) / 1000).toFixed(1) + " s ago";
}

function showStatus(s) {
  document.getElementById("mode").textContent = s.mode;
  const t = document.getElementById("figures");
  t.replaceChildren();
  if (s.mode !== "anycast") {
    row(t, "downlink", s.downlink, "downlink");
    row(t, "uplink", s.uplink + " (MTU " + s.uplink_mtu + ")", "uplink");
    row(t, "peer", s.peer, "peer");
    if (s.next_hop) row(t, "next hop", s.next_hop + (s.via ? " via " + s.via : ""), "next_hop");
  }
  row(t, "ready", s.ready ? "yes" : "no: " + s.not_ready, "ready", !s.ready);
  const p = s.path;
  if (p) {
    let v = p.state;
    if (p.rtt_seconds > 0) v += ", rtt " + ms(p.rtt_seconds) + ", jitter " + ms(p.jitter_seconds);
    v += ", loss " + (100 * p.loss).toFixed(1) + " % (last 10 s)";
    row(t, "path", v, "path", p.state !== "up");
    if (p.follow_peer) {
      const f = p.follow_peer;
      row(t, "follow peer", (f.lan_down ? "LAN port DOWN" : "LAN port up") + ", taken down " + f.downs + " times", "follow_peer", f.lan_down);
    }
  }
  if (s.wireguard) row(t, "wireguard", s.wireguard.interface + ", " + s.wireguard.peers.length + " peers" +
    (s.wireguard.pseudowire ? (s.wireguard.session ? ", session up" : ", session DOWN") : ""), "wireguard");
  if (s.bgp) {
    const up = s.bgp.neighbors.filter(n => n.state === "established").length;
    row(t, "bgp", up + " of " + s.bgp.neighbors.length + " sessions established", "bgp", up < s.bgp.neighbors.length);
  }
  if (s.mode !== "anycast") {
    row(t, "last BPDU", "from uplink " + ago(s.last_bpdu.ul) + ", from LAN " + ago(s.last_bpdu.dl), "last_bpdu");
    row(t, "xdp bind", s.xdp_bind, "xdp_bind");
  }
  row(t, "uptime", Math.floor(s.uptime_seconds) + " s", "uptime");
  row(t, "config", s.config + (s.config_revision ? " (revision " + s.config_revision + ")" : ""), "config");
  row(t, "version", s.version + " (pid " + s.pid + ")", "version");
}

function showCounters(c) {
  const t = document.getElementById("counters");
  t.replaceChildren();
  for (const [k, v] of Object.entries(c)) {
    // The times of the last BPDUs are in the status above.
    if (v !== 0 && !k.endsWith("_last_bpdu")) row(t, k, String(v), "c_" + k);
  }
}

const charts = {};

// chart draws (or redraws) one graph: series is {label: values}.
function chart(id, title, t, series) {
  const names = Object.keys(series);
  if (t.length < 2 || names.length === 0) return;
  const data = [t].concat(names.map(n => series[n]));
  const key = names.join(",");
  if (charts[id] && charts[id].key === key) {
    charts[id].setData(data);
    return;
  }
  if (charts[id]) {
    charts[id].destroy();
    document.getElementById(id).remove();
  }
  const box = el("div", undefined, "chart");
  box.id = id;
  box.appendChild(el("h3", title));
  document.getElementById("charts").appendChild(box);
  const colors = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"];
  const opts = {
    width: 520, height: 200,
    series: [{}].concat(names.map((n, i) => ({ label: n, stroke: colors[i % colors.length], width: 1.5 }))),
    axes: [{}, { size: 60 }],
  };
  charts[id] = new uPlot(opts, data, box);
  charts[id].key = key;
}

function showHistory(h) {
  const t = h.t;
  const r = h.rates;
  chart("frames", "frames/s", t, { "uplink rx": r.ul_rx_frames, "uplink tx": r.ul_tx_frames, "LAN rx": r.dl_rx_frames, "LAN tx": r.dl_tx_frames });
  chart("bits", "bits/s", t, { "uplink rx": r.ul_rx_bits, "uplink tx": r.ul_tx_bits, "LAN rx": r.dl_rx_bits, "LAN tx": r.dl_tx_bits });
  chart("drops", "drops/s by reason", t, h.drops);
  // -1: none yet, drawn as a gap.
  const age = {};
  for (const [k, v] of Object.entries(h.bpdu_age_seconds)) age[k] = v.map(x => (x < 0 ? null : x));
  chart("bpdu", "age of the last BPDU, s", t, age);
  if (h.rtt_ms) chart("rtt", "round trip to the peer, ms", t, { rtt: h.rtt_ms.map(x => (x < 0 ? null : x)) });
  if (h.loss_percent) chart("loss", "keepalives lost, %", t, { loss: h.loss_percent });
  if (h.bgp_established) chart("bgp", "BGP sessions established", t, { sessions: h.bgp_established });
}

async function refresh() {
  try {
    const [s, c, h] = await Promise.all(["status.json", "counters.json", "history.json"].map(u => fetch(u).then(r => r.json())));
    showStatus(s);
    showCounters(c);
    showHistory(h);
    document.getElementById("note").textContent = "read-only; refreshed every 10 s; last at " + new Date().toLocaleTimeString();
  } catch (e) {
    document.getElementById("note").textContent = "pwgated does not answer: " + e;
  }
}

refresh();
setInterval(refresh, 10000);

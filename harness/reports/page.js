/* pams show: draws the page model that harness/reports/page.py embeds (#pams-model) on one
   canvas; the raw trace lines (#pams-trace) are parsed only when an element is opened.
   Nothing here judges: states, windows and violations come from the checkers. */
(function () {
  "use strict";
  var M = JSON.parse(document.getElementById("pams-model").textContent);
  var RAW = null;
  var COLORS = {
    online: "#dff1e3", offline: "#fde3c8", out: "#f1f1f3", uncertain: "#fff1a8",
    ok: "#2e7d32", unacknowledged: "#9ccc65", fail: "#ef6c00", refused: "#8e24aa",
    info: "#607d8b", none: "#b0bec5", arrow: "rgba(21,101,192,0.55)", phantom: "#c2185b",
    pause: "rgba(69,90,100,0.35)", partition: "rgba(57,73,171,0.35)", fault: "#4e342e",
    window: "#1565c0", violation: "#d50000", tick: "rgba(0,0,0,0.28)"
  };
  var OUTCOMES = ["ok", "unacknowledged", "fail", "refused", "info", "none"];
  var OUT_WORD = { ok: "ok", unacknowledged: "ok, never acknowledged", fail: "failed",
    refused: "refused", info: "unknown (info)", none: "no completion" };
  var LANE_H = 50, AXIS_H = 26, GUT = 92, PAD_R = 14;
  var lanes = M.lanes, nL = lanes.length, H = M.meta.horizon || 1;
  var ops = M.ops, msgs = M.msgs, dels = M.dels, viol = M.viol;
  var nOps = ops.lane.length, nDel = dels.lane.length;
  var canvas = document.getElementById("lanes"), ctx = canvas.getContext("2d");
  var tip = document.getElementById("tip");
  var view = { t0: -0.02 * H, t1: H * 1.02 }, W = 800, dpr = 1;
  var filt = { lane: -1, msg: -1 }, selected = null, pending = false;
  window.pamsDrawn = null;

  // ---------------------------------------------------------------- indexes (no judging)
  var opEnd = new Float64Array(nOps);
  var byLaneOps = [], byLaneDels = [];
  for (var l = 0; l < nL; l++) { byLaneOps.push([]); byLaneDels.push([]); }
  for (var i = 0; i < nOps; i++) {
    opEnd[i] = ops.t1[i] === null ? H : ops.t1[i];
    byLaneOps[ops.lane[i]].push(i);
  }
  for (i = 0; i < nDel; i++) byLaneDels[dels.lane[i]].push(i);
  // culling: ops by invoke time (trace order) with the long ones apart; deliveries by time
  var SHORT = H / 50, shortMax = 0, longOps = [];
  for (i = 0; i < nOps; i++) {
    var dur = opEnd[i] - ops.inv[i];
    if (dur > SHORT) longOps.push(i); else shortMax = Math.max(shortMax, dur);
  }
  var maxLag = 0;
  for (i = 0; i < nDel; i++) {
    if (dels.msg[i] >= 0) maxLag = Math.max(maxLag, dels.t[i] - msgs.s0[dels.msg[i]]);
  }
  var senderLane = msgs.op.map(function (o) { return ops.lane[o]; });
  var violOps = {}, violDels = {}, violMsgs = {};
  viol.forEach(function (v, k) {
    v.ops.forEach(function (o) { (violOps[o] = violOps[o] || []).push(k); });
    v.dels.forEach(function (d) { (violDels[d] = violDels[d] || []).push(k); });
    if (v.msg >= 0) (violMsgs[v.msg] = violMsgs[v.msg] || []).push(k);
  });
  var violLanes = {};
  viol.forEach(function (v) { violLanes[v.lane] = true; });
  var tokenIndex = {};
  msgs.token.forEach(function (t, k) { tokenIndex[t] = k; });

  function x(t) { return GUT + (t - view.t0) / (view.t1 - view.t0) * (W - GUT - PAD_R); }
  function tAt(px) { return view.t0 + (px - GUT) / (W - GUT - PAD_R) * (view.t1 - view.t0); }
  function laneY(l) { return AXIS_H + l * LANE_H; }
  function laneName(l) { return l === 0 ? "coordinator" : "p" + lanes[l]; }
  function fmt(t) { return t === null || t === undefined ? "-" : t.toFixed(3); }
  function stateName(bits) {
    var s = [];
    if (bits & 1) s.push("online");
    if (bits & 2) s.push("offline");
    if (bits & 4) s.push("out");
    return s.length === 1 ? s[0] : s.join(" or ") + " (uncertain)";
  }
  function stateColor(bits) {
    return bits === 1 ? COLORS.online : bits === 2 ? COLORS.offline : bits === 4 ? COLORS.out
      : COLORS.uncertain;
  }
  function bisect(arr, t) { // first index with arr[i] >= t
    var lo = 0, hi = arr.length;
    while (lo < hi) { var mid = (lo + hi) >> 1; if (arr[mid] < t) lo = mid + 1; else hi = mid; }
    return lo;
  }

  // -------------------------------------------------------------------------- filtering
  function opShown(o) {
    if (filt.msg >= 0) return ops.msg[o] === filt.msg;
    return filt.lane < 0 || ops.lane[o] === filt.lane;
  }
  function delShown(d) {
    if (filt.msg >= 0) return dels.msg[d] === filt.msg;
    if (filt.lane < 0) return true;
    var m = dels.msg[d];
    return dels.lane[d] === filt.lane || (m >= 0 && senderLane[m] === filt.lane);
  }
  function violShown(v) {
    if (filt.msg >= 0) return v.msg === filt.msg;
    return filt.lane < 0 || v.lane === filt.lane;
  }
  function laneShown(l) { return filt.msg >= 0 || filt.lane < 0 || filt.lane === l; }

  // ---------------------------------------------------------------------------- drawing
  function resize() {
    dpr = window.devicePixelRatio || 1;
    W = Math.max(400, canvas.parentNode.clientWidth);
    var h = AXIS_H + nL * LANE_H + 6;
    canvas.style.height = h + "px";
    canvas.width = Math.round(W * dpr);
    canvas.height = Math.round(h * dpr);
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  }

  function request() {
    if (!pending) { pending = true; window.requestAnimationFrame(function () { pending = false; draw(); }); }
  }

  function niceStep(span, px) {
    var raw = span / Math.max(1, px / 90), p = Math.pow(10, Math.floor(Math.log10(raw)));
    var m = raw / p;
    return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
  }

  function draw() {
    var h = AXIS_H + nL * LANE_H + 6, counts = { lanes: nL, ops: 0, arrows: 0, deliveries: 0,
      violations: 0, faults: 0, periods: 0, windows: 0 };
    ctx.clearRect(0, 0, W, h);
    ctx.font = "11px system-ui, sans-serif";
    ctx.textBaseline = "middle";
    drawAxis(h);
    ctx.save();
    ctx.beginPath(); ctx.rect(GUT, 0, W - GUT, h); ctx.clip();
    drawPeriods(counts);
    drawPauses();
    drawWindows(counts);
    drawOps(counts);
    drawSide();
    drawArrows(counts);
    drawFaults(counts);
    drawViolations(counts);
    drawSelection();
    ctx.restore();
    drawLabels();
    document.getElementById("status").textContent =
      "showing " + fmt(view.t0) + " – " + fmt(view.t1) + " s · " + counts.ops + " ops, " +
      counts.deliveries + " deliveries, " + counts.arrows + " arrows, " + counts.violations +
      " violation marks drawn · drag to pan, wheel to zoom, click for the raw events";
    window.pamsDrawn = counts;
  }

  function drawAxis(h) {
    var span = view.t1 - view.t0, step = niceStep(span, W - GUT - PAD_R);
    ctx.fillStyle = "#fafafa"; ctx.fillRect(0, 0, W, AXIS_H);
    ctx.strokeStyle = "#ececec"; ctx.fillStyle = "#555"; ctx.lineWidth = 1;
    ctx.textAlign = "center";
    var digits = Math.max(0, Math.min(6, -Math.floor(Math.log10(step))));
    for (var t = Math.ceil(view.t0 / step) * step; t <= view.t1; t += step) {
      var px = Math.round(x(t)) + 0.5;
      if (px < GUT) continue;
      ctx.beginPath(); ctx.moveTo(px, AXIS_H - 6); ctx.lineTo(px, h); ctx.stroke();
      ctx.fillText(t.toFixed(digits) + " s", px, 9);
    }
    ctx.textAlign = "left";
    ctx.strokeStyle = "#ccc";
    for (var l = 0; l <= nL; l++) {
      var y = laneY(l) + 0.5;
      ctx.beginPath(); ctx.moveTo(0, y); ctx.lineTo(W, y); ctx.stroke();
    }
  }

  function drawLabels() {
    ctx.fillStyle = "#fff"; ctx.fillRect(0, AXIS_H, GUT - 1, nL * LANE_H);
    ctx.textAlign = "left"; ctx.font = "12px system-ui, sans-serif";
    for (var l = 0; l < nL; l++) {
      ctx.globalAlpha = laneShown(l) ? 1 : 0.35;
      ctx.fillStyle = l === 0 ? "#37474f" : "#1d1d1f";
      ctx.fillText(laneName(l), 8, laneY(l) + 14);
      if (violLanes[l]) {
        ctx.fillStyle = COLORS.violation; ctx.fillText("⚠", 8, laneY(l) + 32);
      }
    }
    ctx.globalAlpha = 1;
    ctx.strokeStyle = "#ccc"; ctx.beginPath(); ctx.moveTo(GUT - 0.5, AXIS_H); ctx.lineTo(GUT - 0.5, AXIS_H + nL * LANE_H); ctx.stroke();
  }

  function drawPeriods(counts) {
    var P = M.periods;
    for (var i = 0; i < P.lane.length; i++) {
      var a = x(P.t0[i]), b = x(P.t1[i]);
      if (b < GUT || a > W) continue;
      var l = P.lane[i];
      ctx.globalAlpha = laneShown(l) ? 1 : 0.3;
      ctx.fillStyle = stateColor(P.states[i]);
      ctx.fillRect(a, laneY(l) + 1, Math.max(1, b - a), LANE_H - 1);
      counts.periods++;
    }
    ctx.globalAlpha = 1;
  }

  function hatch(color) {
    var c = document.createElement("canvas"); c.width = c.height = 8;
    var g = c.getContext("2d"); g.strokeStyle = color; g.lineWidth = 2;
    g.beginPath(); g.moveTo(0, 8); g.lineTo(8, 0); g.stroke();
    return ctx.createPattern(c, "repeat");
  }
  var HATCH = null;

  function drawPauses() {
    var P = M.pauses;
    if (!HATCH) HATCH = { paused: hatch(COLORS.pause), partitioned: hatch(COLORS.partition) };
    for (var i = 0; i < P.lane.length; i++) {
      var a = x(P.t0[i]), b = x(P.t1[i]), y = laneY(P.lane[i]);
      if (b < GUT || a > W) continue;
      ctx.fillStyle = HATCH[P.word[i]] || HATCH.paused;
      ctx.fillRect(a, y + 1, Math.max(2, b - a), LANE_H - 1);
      ctx.fillStyle = "#263238";
      if (b - a > 60) ctx.fillText(P.word[i], Math.max(a, GUT) + 3, y + LANE_H - 9);
    }
  }

  function drawWindows(counts) {
    var Wn = M.windows;
    ctx.lineWidth = 1.5;
    for (var i = 0; i < Wn.lane.length; i++) {
      var l = Wn.lane[i], y = laneY(l) + 24;
      var e = x(Wn.expired[i]), o = x(Wn.owed[i]), r = x(Wn.r1[i]);
      if (r < GUT || e > W) continue;
      ctx.globalAlpha = laneShown(l) ? 1 : 0.3;
      ctx.strokeStyle = COLORS.window;
      ctx.setLineDash([3, 3]);
      ctx.beginPath(); ctx.moveTo(e, y); ctx.lineTo(Math.max(e, o), y); ctx.stroke();
      ctx.setLineDash([]);
      ctx.beginPath(); ctx.moveTo(Math.max(e, o), y); ctx.lineTo(r, y);
      ctx.moveTo(e, y - 3); ctx.lineTo(e, y + 3); ctx.moveTo(o, y - 4); ctx.lineTo(o, y + 4);
      ctx.moveTo(r, y - 4); ctx.lineTo(r, y + 4); ctx.stroke();
      if (r - o > 70) { ctx.fillStyle = COLORS.window; ctx.fillText("td window", o + 3, y + 7); }
      counts.windows++;
    }
    ctx.globalAlpha = 1; ctx.lineWidth = 1;
  }

  function visibleOps() {
    var out = longOps.filter(function (o) { return opEnd[o] >= view.t0 && ops.inv[o] <= view.t1; });
    for (var o = bisect(ops.inv, view.t0 - shortMax); o < nOps && ops.inv[o] <= view.t1; o++) {
      if (opEnd[o] - ops.inv[o] <= SHORT) out.push(o);
    }
    return out;
  }

  function drawOps(counts) {
    var lastPx = new Float64Array(nL).fill(-1e9), shown = visibleOps();
    for (var k = 0; k < shown.length; k++) {
      var o = shown[k], a = x(ops.inv[o]), b = x(opEnd[o]);
      if (b < GUT - 2 || a > W) continue;
      var l = ops.lane[o], w = Math.max(2, b - a), y = laneY(l) + 5;
      if (w <= 2 && Math.abs(a - lastPx[l]) < 1 && !violOps[o]) continue; // the same pixel again
      lastPx[l] = a;
      var out = OUTCOMES[ops.out[o]];
      ctx.globalAlpha = opShown(o) ? 1 : 0.15;
      ctx.fillStyle = COLORS[out];
      ctx.fillRect(a, y, w, 12);
      if (out === "none" || out === "info") {
        ctx.strokeStyle = "#37474f"; ctx.setLineDash([2, 2]); ctx.strokeRect(a + 0.5, y + 0.5, w - 1, 11); ctx.setLineDash([]);
      }
      if (w > 48) {
        ctx.fillStyle = out === "unacknowledged" || out === "none" ? "#1d1d1f" : "#fff";
        var label = ops.f[o] + (ops.msg[o] >= 0 ? " " + msgs.token[ops.msg[o]] : "");
        ctx.fillText(label.slice(0, Math.floor(w / 6.2)), Math.max(a, GUT) + 3, y + 6.5);
      }
      counts.ops++;
    }
    ctx.globalAlpha = 1;
  }

  function drawSide() {
    var rows = [["wire", LANE_H - 4, "rgba(21,101,192,0.6)"], ["output", LANE_H - 7, "rgba(0,0,0,0.35)"],
      ["log", LANE_H - 10, "rgba(121,85,72,0.6)"]];
    rows.forEach(function (r) {
      var S = M.side[r[0]]; if (!S) return;
      ctx.strokeStyle = r[2]; ctx.beginPath();
      var from = bisect(S.t, view.t0), last = -1, lastLane = -1;
      for (var i = from; i < S.t.length && S.t[i] <= view.t1; i++) {
        var px = Math.round(x(S.t[i])) + 0.5;
        if (px === last && S.lane[i] === lastLane) continue;
        last = px; lastLane = S.lane[i];
        var y = laneY(S.lane[i]) + r[1];
        ctx.moveTo(px, y); ctx.lineTo(px, y + 3);
      }
      ctx.stroke();
    });
    var P = M.side.process, Q = M.side.probe;
    ctx.fillStyle = "#000";
    [P, Q].forEach(function (S, k) {
      if (!S) return;
      for (var i = bisect(S.t, view.t0); i < S.t.length && S.t[i] <= view.t1; i++) {
        var px = x(S.t[i]), y = laneY(S.lane[i]);
        ctx.fillStyle = k ? COLORS.fail : "#263238";
        ctx.fillRect(px - 1, y + 19, 2, 9);
        if (S.label[i].indexOf("exit") === 0 || k) {
          ctx.fillText((k ? "✗ " : "") + S.label[i], px + 3, y + 23);
        }
      }
    });
  }

  function drawArrows(counts) {
    var visible = [], d;
    for (d = bisect(dels.t, view.t0); d < nDel && dels.t[d] <= view.t1 + maxLag; d++) {
      var t = dels.t[d];
      if (t < view.t0 && (dels.msg[d] < 0 || msgs.s0[dels.msg[d]] < view.t0)) continue;
      var m = dels.msg[d];
      var x0 = m >= 0 ? x(msgs.s0[m]) : x(t);
      if (x0 > W) continue;
      visible.push(d);
    }
    var heads = visible.length < 4000;
    var strokes = [[COLORS.arrow, 1, true], ["rgba(21,101,192,0.12)", 1, false]];
    strokes.forEach(function (s) {
      ctx.strokeStyle = s[0]; ctx.lineWidth = s[1]; ctx.beginPath();
      visible.forEach(function (d) {
        if (delShown(d) !== s[2] || violDels[d]) return;
        arrowPath(d, heads);
        if (s[2]) counts.arrows++;
      });
      ctx.stroke();
    });
    // delivery dots on the receiver's lane
    var lastPx = new Float64Array(nL).fill(-1e9);
    visible.forEach(function (d) {
      var px = x(dels.t[d]), l = dels.lane[d];
      if (px - lastPx[l] < 1.5 && !violDels[d]) return;
      lastPx[l] = px;
      ctx.globalAlpha = delShown(d) ? 1 : 0.2;
      ctx.fillStyle = dels.phantom[d] ? COLORS.phantom : "#0d47a1";
      ctx.beginPath(); ctx.arc(px, laneY(l) + 36, 3, 0, 6.2832); ctx.fill();
      counts.deliveries++;
    });
    ctx.globalAlpha = 1;
  }

  function arrowPath(d, head) {
    var m = dels.msg[d], l = dels.lane[d], x1 = x(dels.t[d]), y1 = laneY(l) + 33;
    if (m < 0) return; // nothing sent it: a dot without an arrow
    var sl = senderLane[m], x0 = x(msgs.s0[m]), y0 = laneY(sl) + 17;
    if (sl === l) y0 = laneY(sl) + 17;
    ctx.moveTo(x0, y0); ctx.lineTo(x1, y1);
    if (head && Math.abs(y1 - y0) + Math.abs(x1 - x0) > 14) {
      var ang = Math.atan2(y1 - y0, x1 - x0), s = 6;
      ctx.moveTo(x1, y1); ctx.lineTo(x1 - s * Math.cos(ang - 0.45), y1 - s * Math.sin(ang - 0.45));
      ctx.moveTo(x1, y1); ctx.lineTo(x1 - s * Math.cos(ang + 0.45), y1 - s * Math.sin(ang + 0.45));
    }
  }

  var GLYPH = { kill: "✕ kill", restart: "↻ restart", pause: "❚❚ pause", resume: "▶ resume",
    partition: "⚡ partition", heal: "⚡ heal", clock_offset: "⏱ clock", clock_step: "⏱ step" };

  function drawFaults(counts) {
    var F = M.faults;
    ctx.lineWidth = 2;
    for (var i = 0; i < F.t.length; i++) {
      var px = x(F.t[i]);
      if (px < GUT - 40 || px > W) continue;
      var y = laneY(F.lane[i]);
      ctx.strokeStyle = COLORS.fault;
      ctx.beginPath(); ctx.moveTo(px, y + 2); ctx.lineTo(px, y + LANE_H - 2); ctx.stroke();
      var word = GLYPH[F.kind[i]] || "⚑ " + F.kind[i];
      if (F.offset[i] !== null) word += " " + (F.offset[i] >= 0 ? "+" : "") + F.offset[i] + " s";
      ctx.fillStyle = "rgba(255,255,255,0.85)";
      var tw = ctx.measureText(word).width;
      ctx.fillRect(px + 3, y + 38, tw + 4, 12);
      ctx.fillStyle = COLORS.fault; ctx.fillText(word, px + 5, y + 44);
      counts.faults++;
    }
    ctx.lineWidth = 1;
  }

  function labelRow(placed, lane, a, b) { // the first of 3 rows where [a, b] is free, else -1
    var taken = placed[lane] = placed[lane] || [[], [], []];
    for (var r = 0; r < 3; r++) {
      if (taken[r].every(function (s) { return b < s[0] - 4 || a > s[1] + 4; })) { taken[r].push([a, b]); return r; }
    }
    return -1;
  }

  function drawViolations(counts) {
    var placed = {};
    ctx.lineWidth = 2.5;
    viol.forEach(function (v, k) {
      if (!violShown(v)) return;
      var y = laneY(v.lane), ax = x(v.at);
      ctx.strokeStyle = COLORS.violation; ctx.fillStyle = "rgba(213,0,0,0.10)";
      ctx.fillRect(ax - 4, y + 1, 8, LANE_H - 1);
      v.ops.forEach(function (o) {
        var a = x(ops.inv[o]), b = x(opEnd[o]);
        ctx.strokeRect(a - 2, laneY(ops.lane[o]) + 3, Math.max(2, b - a) + 4, 16);
      });
      v.dels.forEach(function (d) {
        ctx.beginPath(); arrowPath(d, true); ctx.stroke();
        ctx.beginPath(); ctx.arc(x(dels.t[d]), laneY(dels.lane[d]) + 36, 6, 0, 6.2832); ctx.stroke();
      });
      if (!v.dels.length && v.msg >= 0) { // owed but not (or wrongly not) delivered: a dashed arrow to ✕
        var sl = senderLane[v.msg];
        ctx.setLineDash([5, 4]);
        ctx.beginPath(); ctx.moveTo(x(msgs.s0[v.msg]), laneY(sl) + 17); ctx.lineTo(ax, y + 33); ctx.stroke();
        ctx.setLineDash([]);
        ctx.beginPath(); ctx.moveTo(ax - 5, y + 31); ctx.lineTo(ax + 5, y + 41);
        ctx.moveTo(ax + 5, y + 31); ctx.lineTo(ax - 5, y + 41); ctx.stroke();
      }
      ctx.fillStyle = COLORS.violation; ctx.font = "bold 11px system-ui, sans-serif";
      var label = "⚠ " + v.rule + (v.unexercised ? " (not exercised)" : ""), tw = ctx.measureText(label).width;
      var lx = Math.min(Math.max(ax + 6, GUT + 2), W - tw - 4), row = labelRow(placed, v.lane, lx, lx + tw);
      if (row >= 0) ctx.fillText(label, lx, y + 24 + 11 * row);
      ctx.font = "11px system-ui, sans-serif";
      counts.violations++;
    });
    ctx.lineWidth = 1;
  }

  function drawSelection() {
    if (!selected || selected.t === undefined) return;
    ctx.strokeStyle = "#000"; ctx.setLineDash([2, 2]);
    var px = Math.round(x(selected.t)) + 0.5;
    ctx.beginPath(); ctx.moveTo(px, AXIS_H); ctx.lineTo(px, AXIS_H + nL * LANE_H); ctx.stroke();
    ctx.setLineDash([]);
  }

  // ---------------------------------------------------------------------------- picking
  function pick(px, py) {
    var l = Math.floor((py - AXIS_H) / LANE_H);
    if (l < 0 || l >= nL || px < GUT) return null;
    var yin = py - laneY(l), t = tAt(px), tol = 4 * (view.t1 - view.t0) / (W - GUT - PAD_R);
    var best = null;
    viol.forEach(function (v, k) {
      if (v.lane === l && Math.abs(v.at - t) <= 1.5 * tol && violShown(v)) best = { kind: "viol", i: k, t: v.at };
    });
    if (best) return best;
    var F = M.faults;
    for (var i = 0; i < F.t.length; i++) {
      if (F.lane[i] === l && Math.abs(F.t[i] - t) <= tol) return { kind: "fault", i: i, t: F.t[i] };
    }
    if (yin >= 28) {
      var L = byLaneDels[l], near = -1, dist = tol;
      var lo = 0, hi = L.length;
      while (lo < hi) { var mid = (lo + hi) >> 1; if (dels.t[L[mid]] < t - tol) lo = mid + 1; else hi = mid; }
      for (var j = lo; j < L.length && dels.t[L[j]] <= t + tol; j++) {
        var dd = Math.abs(dels.t[L[j]] - t);
        if (dd <= dist) { dist = dd; near = L[j]; }
      }
      if (near >= 0) return { kind: "del", i: near, t: dels.t[near] };
      var S = M.side;
      for (var g in S) {
        var k0 = bisect(S[g].t, t - tol);
        for (var q = k0; q < S[g].t.length && S[g].t[q] <= t + tol; q++) {
          if (S[g].lane[q] === l) return { kind: "side", g: g, i: q, t: S[g].t[q] };
        }
      }
    }
    var O = byLaneOps[l];
    for (var n = O.length - 1; n >= 0; n--) {
      var o = O[n];
      if (ops.inv[o] - tol <= t && t <= opEnd[o] + tol && yin <= 22) return { kind: "op", i: o, t: ops.inv[o] };
    }
    var P = M.periods;
    for (var p = 0; p < P.lane.length; p++) {
      if (P.lane[p] === l && P.t0[p] <= t && t <= P.t1[p]) return { kind: "period", i: p, t: t };
    }
    return null;
  }

  function opText(o) {
    var m = ops.msg[o], out = OUTCOMES[ops.out[o]];
    return laneName(ops.lane[o]) + " " + ops.f[o] + (m >= 0 ? " " + msgs.token[m] : "") +
      " (op " + ops.id[o] + "): " + OUT_WORD[out] + ", invoked " + fmt(ops.inv[o]) +
      (ops.t0[o] !== ops.inv[o] ? ", request reached the coordinator " + fmt(ops.t0[o]) : "") +
      ", completed " + fmt(ops.t1[o]);
  }

  function describe(h) {
    if (h.kind === "viol") { var v = viol[h.i]; return v.line; }
    if (h.kind === "op") return opText(h.i);
    if (h.kind === "del") {
      var m = dels.msg[h.i];
      var tok = m >= 0 ? msgs.token[m] : (dels.token ? dels.token[h.i] : "?");
      var s = laneName(dels.lane[h.i]) + " logged " + tok + " at " + fmt(dels.t[h.i]);
      if (m >= 0) s += " (sent by " + laneName(senderLane[m]) + " [" + fmt(msgs.s0[m]) + ", " + fmt(msgs.s1[m]) + "])";
      if (dels.phantom[h.i]) s += " — a phantom: no msend explains it";
      return s;
    }
    if (h.kind === "fault") {
      var F = M.faults;
      return "fault " + F.kind[h.i] + " of " + laneName(F.lane[h.i]) + " at " + fmt(F.t[h.i]) +
        (F.offset[h.i] !== null ? " (offset " + F.offset[h.i] + " s)" : "");
    }
    if (h.kind === "side") {
      var S = M.side[h.g];
      return h.g + " " + S.label[h.i] + " of " + laneName(S.lane[h.i]) + " at " + fmt(S.t[h.i]);
    }
    var P = M.periods;
    return laneName(P.lane[h.i]) + " " + stateName(P.states[h.i]) + " during [" + fmt(P.t0[h.i]) + ", " + fmt(P.t1[h.i]) + "]";
  }

  // ------------------------------------------------------------------------ raw details
  function raw(line) {
    if (RAW === null) RAW = JSON.parse(document.getElementById("pams-trace").textContent);
    return RAW[line - 1] || "(line " + line + " not kept in the page)";
  }
  function decode(b64) {
    try {
      var s = atob(b64), out = "";
      for (var i = 0; i < s.length; i++) {
        var c = s.charCodeAt(i);
        out += c === 10 ? "\\n\n" : c === 13 ? "\\r" : c === 9 ? "\\t" : c >= 32 && c < 127 ? s[i]
          : "\\x" + (c < 16 ? "0" : "") + c.toString(16);
      }
      return out.replace(/\n$/, "");
    } catch (e) { return "(not base64: " + b64 + ")"; }
  }
  function pretty(line) {
    var text = raw(line), ev = null;
    try { ev = JSON.parse(text); } catch (e) { return "line " + line + ": " + text; }
    var s = "line " + line + ": " + text;
    if (ev && ev.type === "wire") {
      s += "\n  bytes (" + (ev.dir || "?") + ", " + (ev.channel || "?") + "): " + decode(ev.data || "");
      if (ev.rewritten) s += "\n  forwarded as: " + decode(ev.rewritten);
    }
    return s;
  }
  function around(group, lane, a, b, most) {
    var S = M.side[group], out = [];
    if (!S) return out;
    for (var i = bisect(S.t, a); i < S.t.length && S.t[i] <= b && out.length < most; i++) {
      if (S.lane[i] === lane) out.push(S.line[i]);
    }
    return out;
  }
  function section(parent, title, lines) {
    var h = document.createElement("h3"); h.textContent = title; h.style.fontSize = "12px"; h.style.margin = "6px 0 0";
    parent.appendChild(h);
    var pre = document.createElement("pre");
    pre.textContent = lines.length ? lines.join("\n") : "(none)";
    parent.appendChild(pre);
  }
  function outputLines(lines) {
    return lines.map(function (n) {
      var ev = {}; try { ev = JSON.parse(raw(n)); } catch (e) { /* kept as raw */ }
      return fmt(ev.t) + " " + (ev.stream || "") + ": " + (ev.line !== undefined ? ev.line : raw(n));
    });
  }
  function open(h) {
    selected = h;
    var box = document.getElementById("details");
    box.textContent = "";
    var title = document.createElement("h2"); title.textContent = describe(h); box.appendChild(title);
    var lines = [], lane = 0, a = h.t, b = h.t, related = [];
    if (h.kind === "op") {
      lines = ops.lines[h.i]; lane = ops.lane[h.i]; a = ops.inv[h.i]; b = opEnd[h.i];
      related = violOps[h.i] || [];
    } else if (h.kind === "del") {
      lines = [dels.line[h.i]]; lane = dels.lane[h.i]; related = violDels[h.i] || [];
      if (dels.msg[h.i] >= 0) lines = ops.lines[msgs.op[dels.msg[h.i]]].concat(lines);
    } else if (h.kind === "fault") {
      lines = [M.faults.line[h.i]]; lane = M.faults.lane[h.i];
    } else if (h.kind === "side") {
      lines = [M.side[h.g].line[h.i]]; lane = M.side[h.g].lane[h.i];
    } else if (h.kind === "viol") {
      var v = viol[h.i]; lane = v.lane; related = [h.i];
      v.ops.forEach(function (o) { lines = lines.concat(ops.lines[o]); });
      v.dels.forEach(function (d) { lines.push(dels.line[d]); });
      if (v.sent) a = Math.min(a, v.sent[0]);
    } else {
      lane = M.periods.lane[h.i]; a = M.periods.t0[h.i]; b = M.periods.t1[h.i];
    }
    related.forEach(function (k) {
      var p = document.createElement("p"); p.className = "why";
      p.textContent = "⚠ " + viol[k].line; box.appendChild(p);
    });
    section(box, "raw events", lines.map(pretty));
    if (h.kind !== "period") {
      section(box, "wire bytes of " + laneName(lane) + " in [" + fmt(a - 0.05) + ", " + fmt(b + 0.05) + "]",
        around("wire", lane, a - 0.05, b + 0.05, 40).map(pretty));
    }
    section(box, "output of " + laneName(lane) + " around " + fmt(a) + " (± 1 s)",
      outputLines(around("output", lane, a - 1, b + 1, 60)));
    if (lane !== 0) section(box, "log lines without a token, log resets", around("log", lane, a - 1, b + 1, 20).map(pretty));
    document.querySelectorAll("#violations li").forEach(function (li) {
      li.classList.toggle("sel", related.indexOf(+li.dataset.k) >= 0);
    });
    request();
  }

  // ------------------------------------------------------------------ zoom, pan, filters
  function zoom(f, at) {
    var span = view.t1 - view.t0, ns = Math.min(Math.max(span * f, 1e-5), H * 4 + 10);
    var c = at === undefined ? (view.t0 + view.t1) / 2 : at, r = (c - view.t0) / span;
    view.t0 = c - r * ns; view.t1 = view.t0 + ns; request();
  }
  function pan(frac) { var s = (view.t1 - view.t0) * frac; view.t0 += s; view.t1 += s; request(); }
  function fit(a, b, share) {
    var pad = Math.max((b - a) * (share === undefined ? 0.02 : share), 0.05);
    view.t0 = a - pad; view.t1 = b + pad; request();
  }
  var drag = null;
  canvas.addEventListener("pointerdown", function (e) {
    drag = { x: e.offsetX, t0: view.t0, t1: view.t1, moved: false };
    canvas.setPointerCapture(e.pointerId);
  });
  canvas.addEventListener("pointermove", function (e) {
    if (drag) {
      var dx = e.offsetX - drag.x;
      if (Math.abs(dx) > 3) { drag.moved = true; canvas.classList.add("dragging"); }
      if (drag.moved) {
        var dt = dx / (W - GUT - PAD_R) * (drag.t1 - drag.t0);
        view.t0 = drag.t0 - dt; view.t1 = drag.t1 - dt; request();
      }
      return;
    }
    var h = pick(e.offsetX, e.offsetY);
    if (!h) { tip.style.display = "none"; return; }
    tip.textContent = describe(h);
    tip.style.display = "block";
    tip.style.left = Math.min(e.offsetX + 14, W - 420) + "px";
    tip.style.top = (e.offsetY + 16) + "px";
  });
  canvas.addEventListener("pointerup", function (e) {
    var d = drag; drag = null; canvas.classList.remove("dragging");
    if (d && !d.moved) { var h = pick(e.offsetX, e.offsetY); if (h) open(h); }
  });
  canvas.addEventListener("pointerleave", function () { tip.style.display = "none"; });
  canvas.addEventListener("wheel", function (e) {
    e.preventDefault();
    if (Math.abs(e.deltaX) > Math.abs(e.deltaY)) { pan(e.deltaX / W); return; }
    zoom(Math.exp(e.deltaY * 0.0015), tAt(e.offsetX));
  }, { passive: false });
  window.addEventListener("keydown", function (e) {
    if (e.target && e.target.tagName === "INPUT") return;
    if (e.key === "+" || e.key === "=") zoom(0.7);
    else if (e.key === "-") zoom(1 / 0.7);
    else if (e.key === "ArrowLeft") pan(-0.2);
    else if (e.key === "ArrowRight") pan(0.2);
    else if (e.key === "0") fit(0, H);
  });
  window.addEventListener("resize", function () { resize(); request(); });

  function el(tag, attrs, text) {
    var n = document.createElement(tag);
    for (var k in attrs) n.setAttribute(k, attrs[k]);
    if (text !== undefined) n.textContent = text;
    return n;
  }
  function setFilter(laneIdx, token) {
    filt.lane = laneIdx; filt.msg = -1;
    var msg = document.getElementById("fmsg");
    if (token) {
      if (tokenIndex[token] === undefined) { msg.style.outlineColor = "#d50000"; msg.title = "no msend sent " + token; }
      else {
        filt.msg = tokenIndex[token]; msg.title = "";
        var m = filt.msg, end = msgs.s1[m];
        for (var d = 0; d < nDel; d++) if (dels.msg[d] === m) end = Math.max(end, dels.t[d]);
        fit(msgs.s0[m], end, 0.3);
      }
    }
    request();
  }

  function buildControls() {
    var bar = document.getElementById("bar");
    var sel = el("select", { id: "fpart", title: "show one participant's lane and messages" });
    sel.appendChild(el("option", { value: "-1" }, "all participants"));
    lanes.forEach(function (name, l) { sel.appendChild(el("option", { value: String(l) }, laneName(l))); });
    var msg = el("input", { id: "fmsg", placeholder: "message token", list: "tokens", title: "show one message" });
    sel.addEventListener("change", function () { setFilter(+sel.value, msg.value.trim()); });
    msg.addEventListener("change", function () { setFilter(+sel.value, msg.value.trim()); });
    var clear = el("button", { type: "button" }, "clear");
    clear.addEventListener("click", function () { sel.value = "-1"; msg.value = ""; setFilter(-1, ""); });
    var buttons = [["fit", function () { fit(0, H); }], ["+", function () { zoom(0.6); }],
      ["−", function () { zoom(1 / 0.6); }], ["◀", function () { pan(-0.25); }], ["▶", function () { pan(0.25); }]];
    bar.appendChild(el("span", {}, "filter:"));
    bar.appendChild(sel); bar.appendChild(msg); bar.appendChild(clear);
    bar.appendChild(el("span", { style: "margin-left:10px" }, "zoom:"));
    buttons.forEach(function (b) {
      var n = el("button", { type: "button" }, b[0]); n.addEventListener("click", b[1]); bar.appendChild(n);
    });
    if (msgs.token.length <= 5000) {
      var list = el("datalist", { id: "tokens" });
      msgs.token.forEach(function (t) { list.appendChild(el("option", { value: t })); });
      bar.appendChild(list);
    }
  }

  function buildSummary() {
    var m = M.meta, head = document.getElementById("summary");
    var h1 = el("h1");
    h1.appendChild(el("span", { "class": "verdict v-" + m.verdict }, m.verdict.toUpperCase()));
    h1.appendChild(document.createTextNode((m.scenario || "(no scenario)") + (m.adapter ? " · " + m.adapter : "")));
    head.appendChild(h1);
    if (m.description) head.appendChild(el("div", { "class": "meta" }, m.description));
    head.appendChild(el("div", { "class": "meta" }, "adapter " + (m.adapter || "(unknown)") + " · td " + m.td +
      " s · tol " + m.tolerance + " s · L " + m.latency_bound + " s · " + (lanes.length - 1) +
      " participants · " + msgs.token.length + " messages · " + m.events + " events · " +
      (m.created ? "recorded " + m.created + " · " : "") + m.trace + (m.truncated ? " · TRUNCATED (no end event)" : "")));
    var table = el("table", { "class": "rules" });
    var tr = el("tr"); ["rule", "verdict", "checked", "violations", "what a violation is"].forEach(function (c) { tr.appendChild(el("th", {}, c)); });
    table.appendChild(tr);
    m.rules.forEach(function (r) {
      var row = el("tr");
      row.appendChild(el("td", {}, r.name));
      row.appendChild(el("td", { "class": "s-" + r.status.replace(/[^a-z]+/g, "-") }, r.status.toUpperCase()));
      row.appendChild(el("td", {}, String(r.checked)));
      row.appendChild(el("td", {}, r.violations ? String(r.violations) : ""));
      row.appendChild(el("td", { "class": "muted" }, r.summary));
      table.appendChild(row);
    });
    head.appendChild(table);
    var notes = m.notes.slice();
    if (m.omitted) notes.push(m.omitted + " raw lines left out of the page (too large): see the trace");
    var ul = el("ul", { "class": "notes" });
    notes.slice(0, 6).forEach(function (n) { ul.appendChild(el("li", {}, n)); });
    if (notes.length) head.appendChild(ul);
    if (notes.length > 6) {
      var more = el("details"), rest = el("ul", { "class": "notes" });
      more.appendChild(el("summary", { "class": "muted" }, (notes.length - 6) + " more notes"));
      notes.slice(6).forEach(function (n) { rest.appendChild(el("li", {}, n)); });
      more.appendChild(rest); head.appendChild(more);
    }
  }

  function buildLegend() {
    var items = [["online", COLORS.online], ["offline", COLORS.offline], ["out (not a member)", COLORS.out],
      ["state uncertain (an op in flight)", COLORS.uncertain], ["op ok", COLORS.ok],
      ["ok, never acknowledged", COLORS.unacknowledged], ["op failed", COLORS.fail], ["refused", COLORS.refused],
      ["unknown (info)", COLORS.info], ["no completion", COLORS.none], ["paused", COLORS.pause],
      ["partitioned", COLORS.partition], ["violation", COLORS.violation]];
    var box = document.getElementById("legend");
    items.forEach(function (it) {
      var s = el("span"); var sw = el("span", { "class": "sw" }); sw.style.background = it[1];
      s.appendChild(sw); s.appendChild(document.createTextNode(it[0])); box.appendChild(s);
    });
    box.appendChild(el("span", {}, "→ message: from its send window to each delivery (● logged line; pink ● phantom)"));
    box.appendChild(el("span", {}, "├┄┼──┤ td window of a reconnect: sent after the solid part's start: owed; before the dashes: must not arrive"));
    box.appendChild(el("span", {}, "│ fault (kill, restart, pause, partition, clock) · ▮ process event · ticks: wire bytes, output, log noise"));
  }

  function buildViolations() {
    var box = document.getElementById("violations");
    box.appendChild(el("h2", {}, viol.length ? viol.length + " violation" + (viol.length > 1 ? "s" : "") : "no violations"));
    if (!viol.length) return;
    var ol = el("ol");
    viol.slice(0, 5000).forEach(function (v, k) {
      var li = el("li", { "data-k": String(k) });
      li.appendChild(el("span", { "class": "rule" }, v.rule));
      li.appendChild(document.createTextNode(" " + (v.who === "coordinator" || !v.who ? v.who || "-" : "p" + v.who) +
        " " + (v.token || "-") + " at " + fmt(v.at) + ": " + v.why + (v.unexercised ? " (not exercised)" : "")));
      li.addEventListener("click", function () {
        var a = v.at, b = v.at;
        if (v.sent) { a = Math.min(a, v.sent[0]); b = Math.max(b, v.sent[1]); }
        v.got.forEach(function (t) { a = Math.min(a, t); b = Math.max(b, t); });
        fit(a, b, 0.6); open({ kind: "viol", i: k, t: v.at });
      });
      ol.appendChild(li);
    });
    box.appendChild(ol);
    if (viol.length > 5000) box.appendChild(el("p", { "class": "muted" }, (viol.length - 5000) + " more: pams check TRACE --json"));
  }

  buildSummary();
  buildControls();
  buildLegend();
  buildViolations();
  resize();
  draw();
  window.pamsRendered = performance.now();
  window.pamsPage = { draw: draw, fit: fit, zoom: zoom, pan: pan, filter: setFilter, open: open,
    view: view, horizon: H, geometry: {  // where things are drawn, in CSS pixels of the canvas (for tests)
      laneMiddle: function (l, frac) { return [x(view.t0 + frac * (view.t1 - view.t0)), laneY(l) + 44]; },
      arrowMiddle: function (d) {
        var m = dels.msg[d];
        return [(x(msgs.s0[m]) + x(dels.t[d])) / 2, (laneY(senderLane[m]) + 17 + laneY(dels.lane[d]) + 33) / 2];
      },
      violationMark: function (k) { return [x(viol[k].at), laneY(viol[k].lane) + 36]; }
    } };
  document.documentElement.setAttribute("data-rendered", "1");
})();

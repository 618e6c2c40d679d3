// asynctrace HTML timeline. Reads the trace from the JSON block and draws only what is on
// screen: lanes in the vertical viewport, bars in the time window, tiny bars grouped.
// Data from the trace MUST reach the DOM only through textContent / setAttribute / dataset.
(function () {
  "use strict";
  var t0Page = performance.now();
  var D = JSON.parse(document.getElementById("asynctrace-data").textContent);
  var LABEL_W = 240, ROW_H = 17, ROW_GAP = 3, PAD = 5, MIN_PX = 3, MAX_LINKS = 400;

  // ---- model --------------------------------------------------------------------------
  var spans = [], byId = new Map(), kids = new Map();
  D.spans.forEach(function (a) {
    var s = {
      id: a[0], parent: a[1], kind: D.kinds[a[2]], name: a[3], start: a[4], end: a[5],
      lane: a[6], depth: a[7], status: D.statuses[a[8]], error: a[9], attrs: a[10] || {}
    };
    spans.push(s);
    byId.set(s.id, s);
  });
  spans.forEach(function (s) {
    if (s.parent === null || !byId.has(s.parent)) return;
    if (!kids.has(s.parent)) kids.set(s.parent, []);
    kids.get(s.parent).push(s);
  });
  var lanes = D.lanes.map(function (l) {
    var rows = [];
    for (var i = 0; i < l.rows; i++) rows.push([]);
    return { track: l.track, label: l.label, rows: rows, y: 0, h: 0 };
  });
  spans.forEach(function (s) { lanes[s.lane].rows[s.depth].push(s); });  // already in start order
  var hiddenSum = D.hidden.lanes > 0 ? { y: 0, h: 44 } : null;
  var totalH = 0;
  lanes.forEach(function (l) { l.y = totalH; l.h = PAD * 2 + l.rows.length * (ROW_H + ROW_GAP) - ROW_GAP; totalH += l.h; });
  if (hiddenSum) { hiddenSum.y = totalH; totalH += hiddenSum.h; }
  // Cross-lane parent -> child links: a gather (or coroutine, or the run) to the tasks it started.
  var links = spans.filter(function (s) {
    var p = s.parent === null ? null : byId.get(s.parent);
    return p && p.lane !== s.lane;
  });

  // ---- helpers ------------------------------------------------------------------------
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function svg(tag) { return document.createElementNS("http://www.w3.org/2000/svg", tag); }
  function fmt(sec, digits) {
    var a = Math.abs(sec), d = digits === undefined ? 3 : digits;
    if (a === 0) return "0 s";
    if (a >= 1) return sec.toFixed(d) + " s";
    if (a >= 1e-3) return (sec * 1e3).toFixed(Math.max(d - 1, 0)) + " ms";
    if (a >= 1e-6) return (sec * 1e6).toFixed(Math.max(d - 2, 0)) + " \u00b5s";
    return (sec * 1e9).toFixed(0) + " ns";
  }
  function niceStep(raw) {
    var p = Math.pow(10, Math.floor(Math.log10(raw))), m = raw / p;
    return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
  }
  function tickText(t, step) {
    var u = step >= 0.1 ? [1, " s"] : step >= 1e-4 ? [1e-3, " ms"] : step >= 1e-7 ? [1e-6, " \u00b5s"] : [1e-9, " ns"];
    var digits = Math.max(0, Math.ceil(-Math.log10(step / u[0]) - 1e-9));
    return (t / u[0]).toFixed(digits) + u[1];
  }
  function num(n) { return n.toLocaleString("en-US"); }
  function loc(s) {
    var f = s.attrs["code.file.path"], l = s.attrs["code.line.number"];
    if (!f) return null;
    return l === undefined || l === null ? String(f) : f + ":" + l;
  }
  function base(path) { var p = String(path); var i = Math.max(p.lastIndexOf("/"), p.lastIndexOf("\\")); return p.slice(i + 1); }
  function awaited(s) {
    if (s.kind === "await") return s.attrs["asynctrace.awaited"] || s.name;
    // the awaits of this span's own lane below it: what this task or coroutine waited on
    var counts = new Map(), stack = (kids.get(s.id) || []).slice(), seen = 0;
    while (stack.length && seen++ < 20000) {
      var c = stack.pop();
      if (c.lane !== s.lane) continue;
      if (c.kind === "await") counts.set(c.name, (counts.get(c.name) || 0) + 1);
      else (kids.get(c.id) || []).forEach(function (g) { stack.push(g); });
    }
    if (!counts.size) return null;
    var out = [];
    counts.forEach(function (n, name) { out.push(n > 1 ? name + " \u00d7" + n : name); });
    return out.slice(0, 4).join(", ") + (out.length > 4 ? ", \u2026" : "");
  }
  function fields(s, full) {
    var f = [["kind", s.kind], ["start", fmt(s.start, 6)], ["duration", fmt(s.end - s.start, 6)], ["status", s.status]];
    if (s.error) f.push(["error", s.error]);
    var aw = awaited(s);
    if (aw) f.push([s.kind === "await" ? "awaited" : "awaits", aw]);
    var at = loc(s);
    if (at) f.push(["at", full ? at : base(at)]);
    var tn = s.attrs["asynctrace.task.name"];
    if (tn) f.push(["task", tn]);
    if (full) {
      var p = s.parent === null ? null : byId.get(s.parent);
      if (p) f.push(["parent", p.kind + " " + p.name]);
      var skip = { "code.file.path": 1, "code.line.number": 1, "asynctrace.task.name": 1, "asynctrace.awaited": 1 };
      Object.keys(s.attrs).forEach(function (k) {
        if (!skip[k]) f.push([k, typeof s.attrs[k] === "string" ? s.attrs[k] : JSON.stringify(s.attrs[k])]);
      });
      f.push(["span id", s.id]);
    }
    return f;
  }
  function fillDetails(box, s, full) {
    box.replaceChildren(el("div", "name", s.name));
    var dl = el("dl");
    fields(s, full).forEach(function (kv) {
      dl.appendChild(el("dt", null, kv[0]));
      dl.appendChild(el("dd", kv[0] === "error" ? "err" : null, kv[1]));
    });
    box.appendChild(dl);
  }

  // ---- page skeleton ------------------------------------------------------------------
  var S = D.summary, C = D.concurrency, wall = D.end - D.start;
  var header = el("header"), top = el("div", "top"), h1 = el("h1");
  h1.appendChild(el("span", "brand", "asynctrace"));
  h1.appendChild(document.createTextNode(D.title));
  top.appendChild(h1);
  var controls = el("div", "controls");
  controls.appendChild(el("span", "hint", "wheel: zoom \u00b7 drag: pan \u00b7 shift+wheel: scroll"));
  var bOut = el("button", null, "\u2212"), bIn = el("button", null, "+"), bFit = el("button", null, "Fit");
  bOut.id = "zoom-out"; bIn.id = "zoom-in"; bFit.id = "zoom-fit";
  bOut.setAttribute("title", "zoom out (-)"); bIn.setAttribute("title", "zoom in (+)"); bFit.setAttribute("title", "show everything (0)");
  controls.append(bOut, bIn, bFit);
  var onPath = spans.some(function (s) { return s.attrs["asynctrace.critical"] === true; });
  if (onPath) {  // the run's critical path: the spans whose ends set its end, highlighted
    var bPath = el("button", null, "Critical path");
    bPath.id = "critical-toggle";
    bPath.setAttribute("title", "highlight the spans whose ends set the run's end (c)");
    bPath.setAttribute("aria-pressed", "true");
    document.body.classList.add("show-critical");
    bPath.addEventListener("click", function () {
      var on = document.body.classList.toggle("show-critical");
      bPath.setAttribute("aria-pressed", on ? "true" : "false");
    });
    controls.append(bPath);
  }
  top.appendChild(controls);
  header.appendChild(top);
  var summary = el("p");
  summary.id = "summary";
  function part(label, value) { summary.appendChild(document.createTextNode(label)); summary.appendChild(el("b", null, value)); }
  part("wall time ", fmt(wall));
  part(" \u00b7 tasks ", num(S.tasks));
  if (S.threads) part(" \u00b7 thread jobs ", num(S.threads));
  part(" \u00b7 spans ", num(S.spans));
  part(" \u00b7 2+ tasks overlapping for ", fmt(C.overlap) + (wall > 0 ? " (" + Math.round(100 * C.overlap / wall) + "%)" : ""));
  part(" \u00b7 at most ", num(C.max) + " at once");
  part(" \u00b7 clock ", D.clock);
  summary.setAttribute("title", "overlap: time with two or more tasks in flight, not counting a task while it waits for a gather or another task");
  header.appendChild(summary);
  var W = D.waits;
  if (W.groups.length) {  // where the waiting went: the costliest places awaited
    var waits = el("details"), caption = el("summary");
    waits.id = "waits";
    caption.textContent = "Where the waiting went: " + num(W.places) + " places awaited \u00b7 loop blocked " +
      fmt(W.blocked) + " \u00b7 no task running " + fmt(W.idle);
    var table = el("table"), head = el("tr");
    ["what", "where", "count", "total", "mean", "p50", "p99", "max"].forEach(function (h) { head.appendChild(el("th", null, h)); });
    table.appendChild(head);
    W.groups.forEach(function (g) {
      var row = el("tr");
      row.append(el("td", null, g[0]), el("td", null, g[1]), el("td", "n", num(g[2])),
        el("td", "n", fmt(g[3])), el("td", "n", fmt(g[4])), el("td", "n", fmt(g[5])), el("td", "n", fmt(g[6])),
        el("td", "n", fmt(g[7])));
      table.appendChild(row);
    });
    waits.append(caption, table);
    header.appendChild(waits);
  }
  var legend = el("div", "legend");
  D.kinds.forEach(function (k) {
    var item = el("span"), sw = el("i", "k-" + k);
    item.append(sw, document.createTextNode(k));
    legend.appendChild(item);
  });
  [["s-error", "error"], ["s-cancelled", "cancelled / timeout"], ["agg", "grouped tiny spans"]].forEach(function (p) {
    var item = el("span"), sw = el("i", "k-task " + p[0]);
    item.append(sw, document.createTextNode(p[1]));
    legend.appendChild(item);
  });
  header.appendChild(legend);
  var notice = el("div", "notice"), lodNotice = el("div", "notice");
  notice.id = "notice"; lodNotice.id = "lod-notice";
  var staticNotes = [];
  if (D.hidden.lanes > 0) {
    staticNotes.push("Showing " + num(lanes.length) + " of " + num(lanes.length + D.hidden.lanes) +
      " lanes (in creation order); the other " + num(D.hidden.lanes) + " lanes (" + num(D.hidden.spans) +
      " spans) are summed in the last row. The summary and the in-flight row count every task.");
  }
  if (S.dropped) staticNotes.push("The recorder dropped " + num(S.dropped) + " spans (its cap was reached).");
  // the run's start before the program's first span (its imports) is left of the first view
  var opensOnProgram = D.program - D.start > 0.01 * wall;
  if (opensOnProgram) {
    staticNotes.push("The view opens at the program's first span, " + fmt(D.program - D.start) +
      " into the run; before it, the program's start (its imports): Fit shows everything.");
  }
  notice.textContent = staticNotes.join(" ");
  header.append(notice, lodNotice);
  document.body.appendChild(header);

  var timeline = el("div"); timeline.id = "timeline";
  var axis = el("div", "row-fixed"); axis.id = "axis";
  axis.appendChild(el("div", "label", "time"));
  var ticks = el("div", "ticks"); axis.appendChild(ticks);
  var conc = el("div", "row-fixed"); conc.id = "conc";
  var concLabel = el("div", "label", "tasks in flight");
  concLabel.appendChild(el("small", null, "green running \u00b7 blue waiting \u00b7 max " + C.max));
  var concCanvas = el("canvas", "series");
  conc.dataset.max = String(C.max);
  conc.append(concLabel, concCanvas);
  var scroller = el("div"); scroller.id = "scroller";
  var content = el("div"); content.id = "content";
  content.style.height = totalH + "px";
  var grid = el("div", "grid"), lanesBox = el("div"), linkSvg = svg("svg");
  linkSvg.setAttribute("class", "links");
  var defs = svg("defs"), marker = svg("marker"), tipPath = svg("path");
  [["id", "arrow"], ["viewBox", "0 0 8 8"], ["refX", "7"], ["refY", "4"], ["markerWidth", "7"], ["markerHeight", "7"], ["orient", "auto"]]
    .forEach(function (kv) { marker.setAttribute(kv[0], kv[1]); });
  tipPath.setAttribute("d", "M0,0 L8,4 L0,8 z");
  marker.appendChild(tipPath); defs.appendChild(marker);
  content.append(grid, lanesBox, linkSvg);
  scroller.appendChild(content);
  timeline.append(axis, conc, scroller);
  document.body.appendChild(timeline);
  var panel = el("div"); panel.id = "panel";
  panel.appendChild(el("div", "empty", "Click a bar to see its details here. Hover for a quick look."));
  document.body.appendChild(panel);
  var tip = el("div"); tip.id = "tip"; tip.hidden = true;
  document.body.appendChild(tip);

  // ---- view ---------------------------------------------------------------------------
  var view = { t0: D.start, scale: 1 }, selected = null, hot = null;
  function areaW() { return Math.max(50, scroller.clientWidth - LABEL_W); }
  function fit(from) {  // from: the time at the left edge (default: the run's start)
    var t0 = from === undefined ? D.start : from;
    view.scale = (areaW() - 24) / Math.max(D.end - t0, 1e-6);
    view.t0 = t0 - 12 / view.scale;
  }
  function zoomAt(factor, px) {
    var w = areaW(), range = Math.max(wall, 1e-6);
    var t = view.t0 + px / view.scale;
    view.scale = Math.min(Math.max(view.scale * factor, (w / range) / 20), 1e10);
    view.t0 = t - px / view.scale;
    schedule();
  }
  function firstEnding(row, t) {  // rows never overlap, so ends are sorted like starts
    var lo = 0, hi = row.length;
    while (lo < hi) { var mid = (lo + hi) >> 1; if (row[mid].end < t) lo = mid + 1; else hi = mid; }
    return lo;
  }
  function drawSeries(canvas, series, w, h, max) {
    var dpr = window.devicePixelRatio || 1;
    canvas.width = Math.round(w * dpr); canvas.height = Math.round(h * dpr);
    canvas.style.width = w + "px"; canvas.style.height = h + "px";
    var g = canvas.getContext("2d");
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, h);
    if (!series || !series.t.length || max <= 0) return;
    var T = series.t, top = 4, yOf = function (n) { return h - 2 - (h - 2 - top) * n / max; };
    // The largest value in each pixel column: the path stays at most 2 * w points however many
    // steps the series has (a path of 10^5 vertices makes software rasterizing take seconds).
    var cols = Math.ceil(w), maxN = new Float64Array(cols), maxR = new Float64Array(cols);
    var lo = 0, hi = T.length;
    while (lo < hi) { var mid = (lo + hi) >> 1; if (T[mid] < view.t0) lo = mid + 1; else hi = mid; }
    for (var j = Math.max(0, lo - 1); j < T.length; j++) {
      var xa = (T[j] - view.t0) * view.scale;
      if (xa >= cols) break;
      var xb = j + 1 < T.length ? (T[j + 1] - view.t0) * view.scale : xa;
      var n = series.n[j], r = n - series.w[j];
      for (var c = Math.max(0, Math.floor(xa)); c < Math.min(cols, Math.max(Math.ceil(xb), Math.floor(xa) + 1)); c++) {
        if (n > maxN[c]) maxN[c] = n;
        if (r > maxR[c]) maxR[c] = r;
      }
    }
    [[maxN, "#a9cbeb"], [maxR, "#2e7d32"]].forEach(function (layer) {
      var v = layer[0];
      g.beginPath(); g.moveTo(0, h - 2);
      for (var c = 0; c < cols; c++) { g.lineTo(c, yOf(v[c])); g.lineTo(c + 1, yOf(v[c])); }
      g.lineTo(cols, h - 2); g.closePath();
      g.fillStyle = layer[1]; g.fill();
    });
    g.fillStyle = "#5f6368"; g.font = "10px sans-serif"; g.fillText(String(max), 3, 11);
  }
  function barFor(s, x0, x1) {
    var b = el("div", "bar k-" + s.kind + " s-" + s.status);
    b.dataset.spanId = String(s.id); b.dataset.kind = s.kind; b.dataset.name = s.name; b.dataset.status = s.status;
    b.style.left = x0 + "px"; b.style.width = Math.max(x1 - x0, 1) + "px";
    b.style.top = PAD + s.depth * (ROW_H + ROW_GAP) + "px";
    if (x1 - x0 > 28) b.textContent = s.name;
    if (selected === s.id) b.classList.add("selected");
    if (s.attrs["asynctrace.critical"] === true) b.classList.add("critical");
    return b;
  }
  var aggInfo = new WeakMap(), barX = new Map();
  function render() {
    var started = performance.now();
    var w = areaW(), t1 = view.t0 + w / view.scale, tickList = [];
    content.dataset.scale = String(view.scale); content.dataset.t0 = String(view.t0);
    // axis and grid
    var step = niceStep(110 / view.scale), tk = [], gl = [];
    for (var t = Math.ceil(view.t0 / step) * step; t <= t1; t += step) {
      var x = (t - view.t0) * view.scale, tick = el("div", "tick", tickText(Math.abs(t) < step / 1e6 ? 0 : t, step)), line = el("div", "gl");
      tick.style.left = x + "px"; line.style.left = x + "px";
      tk.push(tick); gl.push(line); tickList.push(t);
    }
    ticks.replaceChildren.apply(ticks, tk); grid.replaceChildren.apply(grid, gl);
    drawSeries(concCanvas, C, w, 52, C.max);
    // lanes in the vertical viewport
    var yTop = scroller.scrollTop - 200, yBot = scroller.scrollTop + scroller.clientHeight + 200;
    var out = [], grouped = 0, drawn = 0;
    barX.clear();
    lanes.forEach(function (l, li) {
      if (l.y + l.h < yTop || l.y > yBot) return;
      var lane = el("div", "lane"), area = el("div", "area");
      lane.dataset.track = String(l.track); lane.dataset.lane = String(li);
      lane.style.top = l.y + "px"; lane.style.height = l.h + "px";
      var label = el("div", "label", l.label); label.setAttribute("title", l.label);
      lane.append(label, area);
      l.rows.forEach(function (row) {
        var group = null;
        function flush() {
          if (!group) return;
          if (group.list.length === 1) { var only = group.list[0]; area.appendChild(barFor(only, group.x0, group.x1)); barX.set(only.id, group.x0); }
          else {
            var a = el("div", "bar agg");
            a.dataset.count = String(group.list.length);
            a.style.left = group.x0 + "px"; a.style.width = Math.max(group.x1 - group.x0, 2) + "px";
            a.style.top = PAD + group.list[0].depth * (ROW_H + ROW_GAP) + "px";
            if (group.x1 - group.x0 > 50) a.textContent = num(group.list.length) + " spans";
            aggInfo.set(a, group.list);
            area.appendChild(a); grouped += group.list.length;
          }
          drawn++; group = null;
        }
        for (var i = firstEnding(row, view.t0); i < row.length && row[i].start <= t1; i++) {
          var s = row[i];
          var x0 = Math.max((s.start - view.t0) * view.scale, -4), x1 = Math.min((s.end - view.t0) * view.scale, w + 4);
          if (x1 - x0 >= MIN_PX) { flush(); area.appendChild(barFor(s, x0, x1)); barX.set(s.id, x0); drawn++; continue; }
          if (group && x0 <= group.x1 + 1) { group.list.push(s); group.x1 = Math.max(group.x1, x0 + 1, x1); }
          else { flush(); group = { x0: x0, x1: Math.max(x1, x0 + 1), list: [s] }; }
        }
        flush();
      });
      if (hot && hot.lanes.has(li)) lane.classList.add("linked");
      out.push(lane);
    });
    if (hiddenSum && hiddenSum.y <= yBot) {
      var lane = el("div", "lane hidden-sum"), area = el("div", "area"), cv = el("canvas", "series");
      lane.style.top = hiddenSum.y + "px"; lane.style.height = hiddenSum.h + "px";
      var label = el("div", "label", "+ " + num(D.hidden.lanes) + " more lanes");
      label.appendChild(el("small", null, "in flight at once (max " + (D.hidden.series ? D.hidden.series.max : 0) + ")"));
      cv.style.left = "0";
      area.appendChild(cv); lane.append(label, area); out.push(lane);
      drawSeries(cv, D.hidden.series, w, hiddenSum.h - 1, D.hidden.series ? D.hidden.series.max : 0);
    }
    lanesBox.replaceChildren.apply(lanesBox, out);
    // links: from the parent's row where the child starts (its spawn: not the parent's own
    // start, which a task started seconds later would seem to share) down to the child's bar,
    // both on screen
    var paths = [];
    linkSvg.setAttribute("width", String(w)); linkSvg.setAttribute("height", String(totalH));
    for (var k = 0; k < links.length && paths.length < MAX_LINKS; k++) {
      var c = links[k], p = byId.get(c.parent);
      if (!barX.has(c.id) || !barX.has(p.id)) continue;
      var px = Math.max(barX.get(p.id), barX.get(c.id)) + 6;
      var py = lanes[p.lane].y + PAD + p.depth * (ROW_H + ROW_GAP) + ROW_H;
      var cx = barX.get(c.id) + 6, cy = lanes[c.lane].y + PAD + c.depth * (ROW_H + ROW_GAP) - 1;
      var bend = Math.max(12, Math.abs(cy - py) / 2);
      var path = svg("path");
      path.setAttribute("d", "M" + px + "," + py + " C" + px + "," + (py + bend) + " " + cx + "," + (cy - bend) + " " + cx + "," + cy);
      path.setAttribute("class", (p.kind === "gather" ? "gather" : "") + (hot && (hot.id === p.id || hot.id === c.id) ? " hot" : ""));
      path.setAttribute("marker-end", "url(#arrow)");
      path.dataset.from = String(p.id); path.dataset.to = String(c.id);
      paths.push(path);
    }
    linkSvg.replaceChildren.apply(linkSvg, [defs].concat(paths));
    lodNotice.textContent = grouped ? num(grouped) + " spans narrower than " + MIN_PX +
      " px are grouped into " + "hatched grey bars at this zoom; zoom in to see them one by one." : "";
    document.body.dataset.renderMs = (performance.now() - started).toFixed(1);
    document.body.dataset.bars = String(drawn);
  }
  var pending = false;
  function schedule() {
    if (pending) return;
    pending = true;
    requestAnimationFrame(function () { pending = false; render(); });
  }

  // ---- interaction --------------------------------------------------------------------
  function showTip(ev, box) {
    tip.hidden = false;
    var x = ev.clientX + 14, y = ev.clientY + 14, r = tip.getBoundingClientRect();
    if (x + r.width > window.innerWidth - 4) x = Math.max(4, ev.clientX - r.width - 14);
    if (y + r.height > window.innerHeight - 4) y = Math.max(4, ev.clientY - r.height - 14);
    tip.style.left = x + "px"; tip.style.top = y + "px";
  }
  function tipForAgg(list) {
    var kinds = new Map();
    list.forEach(function (s) { kinds.set(s.kind, (kinds.get(s.kind) || 0) + 1); });
    var parts = []; kinds.forEach(function (n, k) { parts.push(num(n) + " " + k); });
    tip.replaceChildren(el("div", "name", num(list.length) + " spans grouped"));
    var dl = el("dl");
    [["kinds", parts.join(", ")], ["from", fmt(list[0].start, 6)], ["to", fmt(list[list.length - 1].end, 6)], ["", "zoom in to see them"]]
      .forEach(function (kv) { dl.append(el("dt", null, kv[0]), el("dd", null, kv[1])); });
    tip.appendChild(dl);
  }
  function setHot(s) {
    var id = s ? s.id : null;
    if ((hot && hot.id) === id) return;
    if (!s) { hot = null; schedule(); return; }
    var ls = new Set();
    (kids.get(s.id) || []).forEach(function (c) { if (c.lane !== s.lane) ls.add(c.lane); });
    hot = { id: s.id, lanes: ls };
    schedule();
  }
  var drag = null;
  scroller.addEventListener("mousemove", function (ev) {
    if (drag) return;
    var b = ev.target.closest ? ev.target.closest(".bar") : null;
    if (!b) { tip.hidden = true; setHot(null); return; }
    if (b.classList.contains("agg")) { tipForAgg(aggInfo.get(b) || []); showTip(ev); return; }
    var s = byId.get(Number(b.dataset.spanId));
    if (!s) return;
    fillDetails(tip, s, false); showTip(ev);
    setHot(s.kind === "gather" || kids.has(s.id) ? s : null);
  });
  scroller.addEventListener("mouseleave", function () { tip.hidden = true; setHot(null); });
  conc.addEventListener("mousemove", function (ev) {
    var x = ev.clientX - conc.getBoundingClientRect().left - LABEL_W;
    if (x < 0) { tip.hidden = true; return; }
    var t = view.t0 + x / view.scale, T = C.t, lo = 0, hi = T.length;
    while (lo < hi) { var mid = (lo + hi) >> 1; if (T[mid] <= t) lo = mid + 1; else hi = mid; }
    var n = lo ? C.n[lo - 1] : 0, wt = lo ? C.w[lo - 1] : 0;
    tip.replaceChildren(el("div", "name", "at " + fmt(t, 6)), el("div", null, n + " in flight: " + (n - wt) + " running, " + wt + " waiting"));
    showTip(ev);
  });
  conc.addEventListener("mouseleave", function () { tip.hidden = true; });
  function select(s) {
    selected = s ? s.id : null;
    document.body.dataset.selected = s ? String(s.id) : "";
    if (s) fillDetails(panel, s, true);
    else panel.replaceChildren(el("div", "empty", "Click a bar to see its details here. Hover for a quick look."));
    schedule();
  }
  scroller.addEventListener("mousedown", function (ev) {
    if (ev.button !== 0) return;
    drag = { x: ev.clientX, y: ev.clientY, t0: view.t0, top: scroller.scrollTop, moved: false, target: ev.target };
    ev.preventDefault();
  });
  window.addEventListener("mousemove", function (ev) {
    if (!drag) return;
    var dx = ev.clientX - drag.x, dy = ev.clientY - drag.y;
    if (!drag.moved && Math.abs(dx) + Math.abs(dy) < 4) return;
    drag.moved = true; scroller.classList.add("dragging"); tip.hidden = true;
    view.t0 = drag.t0 - dx / view.scale; scroller.scrollTop = drag.top - dy;
    schedule();
  });
  window.addEventListener("mouseup", function () {
    if (!drag) return;
    var d = drag; drag = null; scroller.classList.remove("dragging");
    if (d.moved) return;
    var b = d.target.closest ? d.target.closest(".bar") : null;
    if (b && b.classList.contains("agg")) {  // clicking a group zooms onto it
      var list = aggInfo.get(b) || [];
      if (list.length) { var a = list[0].start, z = list[list.length - 1].end, w = areaW(); view.scale = Math.min((w - 40) / Math.max(z - a, 1e-9), 1e10); view.t0 = a - 20 / view.scale; schedule(); }
      return;
    }
    select(b ? byId.get(Number(b.dataset.spanId)) || null : null);
  });
  function onWheel(ev) {
    var x = ev.clientX - scroller.getBoundingClientRect().left - LABEL_W;
    if (ev.shiftKey) { scroller.scrollTop += ev.deltaY || ev.deltaX; ev.preventDefault(); return; }
    if (Math.abs(ev.deltaX) > Math.abs(ev.deltaY)) { view.t0 += ev.deltaX / view.scale; schedule(); ev.preventDefault(); return; }
    if (x < 0) return;  // over the labels: scroll the lanes
    zoomAt(Math.exp(-ev.deltaY * 0.0015), x);
    ev.preventDefault();
  }
  scroller.addEventListener("wheel", onWheel, { passive: false });
  axis.addEventListener("wheel", onWheel, { passive: false });
  conc.addEventListener("wheel", onWheel, { passive: false });
  bIn.addEventListener("click", function () { zoomAt(1.6, areaW() / 2); });
  bOut.addEventListener("click", function () { zoomAt(1 / 1.6, areaW() / 2); });
  bFit.addEventListener("click", function () { fit(); schedule(); });
  window.addEventListener("keydown", function (ev) {
    if (ev.key === "+" || ev.key === "=") zoomAt(1.6, areaW() / 2);
    else if (ev.key === "-") zoomAt(1 / 1.6, areaW() / 2);
    else if (ev.key === "0") { fit(); schedule(); }
    else if (ev.key === "c" && onPath) document.getElementById("critical-toggle").click();
    else if (ev.key === "ArrowLeft") { view.t0 -= areaW() / 5 / view.scale; schedule(); }
    else if (ev.key === "ArrowRight") { view.t0 += areaW() / 5 / view.scale; schedule(); }
    else if (ev.key === "Escape") select(null);
  });
  scroller.addEventListener("scroll", schedule);
  window.addEventListener("resize", function () {
    var keep = view.t0 + areaW() / 2 / view.scale;
    schedule(); view.t0 = keep - areaW() / 2 / view.scale;
  });

  fit(opensOnProgram ? D.program : D.start);
  render();
  document.body.dataset.loadMs = (performance.now() - t0Page).toFixed(1);
  document.body.dataset.ready = "1";
})();

// SPDX-License-Identifier: GPL-2.0-or-later
//
// nodetrace page: swimlanes per actor (grouped by node) on a time axis, and
// the graph of each chart with the visited transitions highlighted.
//
// The data (#nt-data, written by tools/nodetrace/nt_html.c) is compact: a
// string table, a table of distinct transitions (machine, from, event, to,
// refused), and one flat array with five numbers per record (time delta in
// microseconds, lane, transition, detail, pair). Lanes are drawn on a canvas:
// each lane shows its state as a coloured band and its transitions as marks;
// when a lane has more marks in view than pixels to show them, the marks are
// counted per pixel column and drawn as a density bar, so a million
// transitions stay responsive. Lane labels and charts are DOM elements with
// data attributes, so a headless browser's --dump-dom shows what was drawn.
// State bands use fixed colours for the states of the product's charts
// (healthy green, outage orange, catching up yellow, setting up blue), so
// that an outage stands out; other states get a palette colour each.
'use strict';

(function () {
  var started = window.performance.now();
  var D = JSON.parse(document.getElementById('nt-data').textContent);
  var S = D.s;
  var N = D.n;
  var ROW = 24, HEAD = 20, AXIS = 26;
  var REFUSED_COLOUR = '#c0392b';

  function $(id) { return document.getElementById(id); }
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  // ---- decode the records ---------------------------------------------------
  var T = new Float64Array(N);      // µs since D.t0
  var LANE = new Uint32Array(N);
  var TR = new Uint32Array(N);
  var DET = new Uint32Array(N);
  var PAIR = new Uint32Array(N);
  (function () {
    var r = D.r, acc = 0;
    for (var i = 0, j = 0; i < N; i++, j += 5) {
      acc += r[j];
      T[i] = acc;
      LANE[i] = r[j + 1];
      TR[i] = r[j + 2];
      DET[i] = r[j + 3];
      PAIR[i] = r[j + 4];
    }
    D.r = null; // let the big array go
  })();
  var tmax = N ? T[N - 1] : 0;
  var nlanes = D.lanes.length;

  // per lane: record indices in time order (compressed rows)
  var laneStart = new Uint32Array(nlanes + 1);
  var laneIdx = new Uint32Array(N);
  var laneRefused = new Uint32Array(nlanes);
  (function () {
    var cnt = new Uint32Array(nlanes), i;
    for (i = 0; i < N; i++) cnt[LANE[i]]++;
    for (i = 0; i < nlanes; i++) laneStart[i + 1] = laneStart[i] + cnt[i];
    var pos = laneStart.slice(0, nlanes);
    for (i = 0; i < N; i++) {
      laneIdx[pos[LANE[i]]++] = i;
      if (D.tr[TR[i]][4]) laneRefused[LANE[i]]++;
    }
  })();

  // ---- colours ----------------------------------------------------------------
  function hash(str) {
    var h = 5381;
    for (var i = 0; i < str.length; i++) h = (h * 33 + str.charCodeAt(i)) >>> 0;
    return h;
  }
  var machineColour = {}, stateColour = {};
  function mcol(m) {
    if (!(m in machineColour)) machineColour[m] = 'hsl(' + (hash(S[m]) % 360) + ',62%,38%)';
    return machineColour[m];
  }
  var KNOWN_STATES = {
    up: '#d3efd9', protected: '#d3efd9', reverse_protected: '#d3efd9', failed_back: '#d3efd9',
    backoff: '#fbd3c4', bitmap_mode: '#fbd3c4', failed_over: '#f3d9f0', test_failover: '#f3d9f0',
    resyncing: '#fbedb8', initial_sync: '#d6e6fa', reprotecting: '#fbedb8',
    failing_over: '#f3d9f0', failing_back: '#f3d9f0', committed: '#e4dcf5',
    init: '#eceef2', created: '#eceef2', connecting: '#e1e4f7', handshake: '#dce9f5',
    hello: '#d9eff0', paused: '#e8e4d8', closed: '#f0f1f3'
  };
  var PALETTE = ['#dfe7fb', '#fde2c8', '#d8f0e6', '#f6d6e0', '#e9e2f8', '#f8f0c7', '#d5eef6',
    '#ecdfd3', '#e0f0cf', '#f3dcf3'];
  var paletteNext = 0;
  function scol(s) {
    if (!(s in stateColour)) {
      stateColour[s] = Object.prototype.hasOwnProperty.call(KNOWN_STATES, S[s]) ? KNOWN_STATES[S[s]]
        : PALETTE[paletteNext++ % PALETTE.length];
    }
    return stateColour[s];
  }

  // ---- time -------------------------------------------------------------------
  function pad(n, w) { n = String(n); while (n.length < w) n = '0' + n; return n; }
  function isoTime(rel) {
    var us = D.t0 + rel;
    var ms = Math.floor(us / 1000);
    var d = new Date(ms);
    return d.getUTCFullYear() + '-' + pad(d.getUTCMonth() + 1, 2) + '-' + pad(d.getUTCDate(), 2) +
      'T' + pad(d.getUTCHours(), 2) + ':' + pad(d.getUTCMinutes(), 2) + ':' +
      pad(d.getUTCSeconds(), 2) + '.' + pad(Math.round(us - Math.floor(us / 1e6) * 1e6), 6) + 'Z';
  }
  function fmtSpan(us) {
    if (us < 1000) return us.toFixed(0) + ' µs';
    if (us < 1e6) return (us / 1000).toFixed(us < 1e4 ? 2 : 1) + ' ms';
    if (us < 120e6) return (us / 1e6).toFixed(us < 1e7 ? 3 : 1) + ' s';
    if (us < 7200e6) return (us / 60e6).toFixed(1) + ' min';
    return (us / 3600e6).toFixed(1) + ' h';
  }

  // ---- summary and lane labels -------------------------------------------------
  var totalRefused = 0;
  for (var li = 0; li < nlanes; li++) totalRefused += laneRefused[li];
  (function () {
    var sum = $('nt-summary');
    sum.appendChild(document.createTextNode(
      N + ' transitions, ' + totalRefused + ' refused, ' + nlanes + ' actors on ' +
      D.nodes.length + ' node(s)' + (N ? ', ' + isoTime(0) + ' .. ' + isoTime(tmax) +
      ' (' + fmtSpan(tmax) + ')' : '') + (D.filters ? ', filters: ' + D.filters : '') + '. '));
    D.off.forEach(function (o) {
      var sp = el('span', 'nt-off', 'node ' + S[o[0]] + ': clock offset to ' + S[o[1]] + ' ' +
        (o[2] >= 0 ? '+' : '') + o[2] + ' us');
      sp.setAttribute('data-node', S[o[0]]);
      sp.setAttribute('data-peer', S[o[1]]);
      sp.setAttribute('data-offset-us', String(o[2]));
      sum.appendChild(sp);
    });
  })();

  // rows: node headers and lanes, in the order of D.lanes (sorted by node)
  var rows = [];
  (function () {
    var labels = $('nt-labels'), y = 0, lastNode = -1;
    D.lanes.forEach(function (ln, i) {
      if (ln[0] !== lastNode) {
        lastNode = ln[0];
        var h = el('div', 'nt-node-head', S[ln[0]] || '(no node)');
        h.setAttribute('data-node', S[ln[0]]);
        D.off.forEach(function (o) {
          if (o[0] === ln[0])
            h.appendChild(el('small', null, 'offset to ' + S[o[1]] + ' ' + (o[2] >= 0 ? '+' : '') +
              o[2] + ' us'));
        });
        labels.appendChild(h);
        rows.push({ lane: -1, y: y, h: HEAD });
        y += HEAD;
      }
      var n = laneStart[i + 1] - laneStart[i];
      var d = el('div', 'nt-lane' + (laneRefused[i] ? ' nt-has-refused' : ''));
      d.id = 'nt-lane-' + i;
      d.setAttribute('data-node', S[ln[0]]);
      d.setAttribute('data-actor', S[ln[1]]);
      d.setAttribute('data-count', String(n));
      d.setAttribute('data-refused', String(laneRefused[i]));
      var peer = S[ln[2]] || '';
      if (peer) d.setAttribute('data-peer', peer);
      d.title = S[ln[0]] + ' / ' + S[ln[1]] + (peer ? ' (peer ' + peer + ')' : '') + ': ' + n +
        ' transitions, ' + laneRefused[i] + ' refused';
      d.appendChild(document.createTextNode(S[ln[1]] || '(no actor)'));
      // an accepted link is named by its address: say who the peer was
      if (peer && (S[ln[1]] || '').indexOf(peer) < 0) d.appendChild(el('span', 'nt-peer', '\u2190 ' + peer));
      d.appendChild(el('span', 'nt-n', '(' + n + (laneRefused[i] ? ', ' + laneRefused[i] + ' refused' : '') + ')'));
      labels.appendChild(d);
      rows.push({ lane: i, y: y, h: ROW });
      y += ROW;
    });
    rows.height = y;
  })();

  // ---- the plot ------------------------------------------------------------------
  var canvas = $('nt-canvas'), axis = $('nt-axis');
  var ctx = canvas.getContext('2d'), actx = axis.getContext('2d');
  var W = 100, dpr = window.devicePixelRatio || 1;
  var v0 = 0, v1 = Math.max(tmax, 1), selected = -1, drawPending = false;

  function fit() {
    var span = Math.max(tmax, 1);
    v0 = -span * 0.01;
    v1 = span * 1.01;
  }
  fit();

  function resize() {
    W = Math.max(100, $('nt-plot').clientWidth);
    var H = Math.max(rows.height, 10);
    canvas.width = Math.round(W * dpr);
    canvas.height = Math.round(H * dpr);
    canvas.style.width = W + 'px';
    canvas.style.height = H + 'px';
    axis.width = Math.round(W * dpr);
    axis.height = Math.round(AXIS * dpr);
    axis.style.width = W + 'px';
    axis.style.height = AXIS + 'px';
    redraw();
  }
  function redraw() {
    if (drawPending) return;
    drawPending = true;
    window.requestAnimationFrame(function () {
      drawPending = false;
      try { draw(); } catch (e) { window.ntRecordError('draw: ' + e); }
    });
  }
  function xOf(t) { return (t - v0) / (v1 - v0) * W; }
  function tOf(x) { return v0 + x / W * (v1 - v0); }

  // first index in lane @l (position in laneIdx) with time >= t
  function lowerBound(l, t) {
    var lo = laneStart[l], hi = laneStart[l + 1];
    while (lo < hi) {
      var mid = (lo + hi) >>> 1;
      if (T[laneIdx[mid]] < t) lo = mid + 1; else hi = mid;
    }
    return lo;
  }

  var STEPS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1e3, 2e3, 5e3, 1e4, 2e4, 5e4, 1e5, 2e5, 5e5,
    1e6, 2e6, 5e6, 1e7, 15e6, 3e7, 6e7, 12e7, 3e8, 6e8, 9e8, 18e8, 36e8, 72e8, 144e8, 216e8, 432e8, 864e8];
  function drawAxis() {
    actx.setTransform(dpr, 0, 0, dpr, 0, 0);
    actx.clearRect(0, 0, W, AXIS);
    actx.fillStyle = '#fff';
    actx.fillRect(0, 0, W, AXIS);
    var span = v1 - v0, step = STEPS[STEPS.length - 1];
    for (var i = 0; i < STEPS.length; i++) if (span / STEPS[i] <= W / 110) { step = STEPS[i]; break; }
    actx.strokeStyle = '#c5ccd8';
    actx.fillStyle = '#3c4454';
    actx.font = '11px monospace';
    var abs0 = D.t0 + v0, first = Math.ceil(abs0 / step) * step;
    for (var a = first; a <= D.t0 + v1; a += step) {
      var x = xOf(a - D.t0);
      actx.beginPath();
      actx.moveTo(x + 0.5, AXIS - 6);
      actx.lineTo(x + 0.5, AXIS);
      actx.stroke();
      var lab = isoTime(a - D.t0).slice(11, 26); // HH:MM:SS.ffffff
      if (step >= 1e6) lab = lab.slice(0, 8);
      else if (step >= 1e3) lab = lab.slice(0, 12);
      actx.fillText(lab, x + 3, 12);
    }
    actx.fillStyle = '#7a8394';
    actx.fillText(isoTime(Math.max(v0, 0)).slice(0, 10), 2, AXIS - 2);
    $('nt-range').textContent = 'view ' + fmtSpan(span) + ' from ' + isoTime(v0);
  }

  function draw() {
    drawAxis();
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, W, rows.height);
    ctx.font = '11px monospace';
    var counts = new Uint32Array(W + 1), refusedAt = new Uint8Array(W + 1);
    for (var ri = 0; ri < rows.length; ri++) {
      var row = rows[ri];
      if (row.lane < 0) {
        ctx.fillStyle = '#eef1f6';
        ctx.fillRect(0, row.y, W, row.h);
        continue;
      }
      var l = row.lane, y = row.y + 1, h = row.h - 2;
      // state bands: the state at each pixel column
      var lo0 = laneStart[l], hi0 = laneStart[l + 1];
      var runStart = 0, runState = -1, labels = [];
      var flushRun = function (x1, st) {
        if (st < 0 || x1 <= runStart) return;
        ctx.fillStyle = scol(st);
        ctx.fillRect(runStart, y, x1 - runStart, h);
        var name = S[st];
        if (x1 - runStart > name.length * 7 + 8) labels.push([name, runStart + 4, scol(st)]);
      };
      for (var x = 0; x <= W; x += 2) {
        var p = lowerBound(l, tOf(x + 1)) - 1, st = -1;
        if (p >= lo0 && p < hi0) { var trp = D.tr[TR[laneIdx[p]]]; st = trp[4] ? trp[1] : trp[3]; }
        if (st !== runState) {
          flushRun(x, runState);
          runStart = x;
          runState = st;
        }
      }
      flushRun(W, runState);
      // marks
      var lo = lowerBound(l, v0), hi = lowerBound(l, v1 + 1e-9), n = hi - lo, k, i2, xx, tr;
      if (n <= W / 3) {
        for (k = lo; k < hi; k++) {
          i2 = laneIdx[k];
          tr = D.tr[TR[i2]];
          xx = Math.round(xOf(T[i2]));
          if (tr[4]) {
            ctx.fillStyle = REFUSED_COLOUR;
            ctx.fillRect(xx - 2, y, 5, h);
          } else {
            ctx.fillStyle = mcol(tr[0]);
            ctx.fillRect(xx - 1, y + 3, 3, h - 6);
          }
          if (i2 === selected) {
            ctx.strokeStyle = '#f39c12';
            ctx.lineWidth = 2;
            ctx.strokeRect(xx - 4, y, 9, h);
          }
        }
      } else {
        counts.fill(0);
        refusedAt.fill(0);
        var scale = W / (v1 - v0), maxc = 1;
        for (k = lo; k < hi; k++) {
          i2 = laneIdx[k];
          xx = ((T[i2] - v0) * scale) | 0;
          if (xx < 0 || xx > W) continue;
          if (++counts[xx] > maxc) maxc = counts[xx];
          if (D.tr[TR[i2]][4]) refusedAt[xx] = 1;
        }
        var lm = Math.log(maxc + 1);
        ctx.fillStyle = '#34495e';
        for (xx = 0; xx <= W; xx++) {
          if (!counts[xx]) continue;
          var bh = Math.max(2, Math.round((h - 4) * Math.log(counts[xx] + 1) / lm));
          ctx.fillRect(xx, y + h - bh, 1, bh);
        }
        ctx.fillStyle = REFUSED_COLOUR;
        for (xx = 0; xx <= W; xx++) if (refusedAt[xx]) ctx.fillRect(xx - 1, y, 3, 5);
      }
      // state names over the marks, with a halo of the band's colour
      ctx.lineWidth = 3;
      ctx.lineJoin = 'round';
      labels.forEach(function (lab) {
        ctx.strokeStyle = lab[2];
        ctx.strokeText(lab[0], lab[1], y + h - 6);
        ctx.fillStyle = '#5a6475';
        ctx.fillText(lab[0], lab[1], y + h - 6);
      });
    }
  }

  // ---- interaction -------------------------------------------------------------
  function zoom(factor, x) {
    var t = tOf(x), span = (v1 - v0) * factor;
    span = Math.min(Math.max(span, 5), Math.max(tmax, 1) * 20);
    v0 = t - (x / W) * span;
    v1 = v0 + span;
    redraw();
  }
  function rowAt(y) {
    for (var i = 0; i < rows.length; i++)
      if (y >= rows[i].y && y < rows[i].y + rows[i].h) return rows[i];
    return null;
  }
  // the record of lane row @row nearest to x, within @tol pixels, or -1
  function recordAt(row, x, tol) {
    if (!row || row.lane < 0) return -1;
    var l = row.lane, p = lowerBound(l, tOf(x)), best = -1, bd = tol + 1;
    for (var k = Math.max(p - 2, laneStart[l]); k < Math.min(p + 2, laneStart[l + 1]); k++) {
      var d = Math.abs(xOf(T[laneIdx[k]]) - x);
      if (d < bd) { bd = d; best = laneIdx[k]; }
    }
    return best;
  }
  function describe(i) {
    var tr = D.tr[TR[i]], ln = D.lanes[LANE[i]];
    var s = isoTime(T[i]) + '\n' + S[ln[0]] + ' ' + S[ln[1]] + ' [' + S[tr[0]] + ']\n';
    s += tr[4] ? S[tr[1]] + ' -x ' + S[tr[2]] + ' (refused)' : S[tr[1]] + ' -> ' + S[tr[3]] + ' on ' + S[tr[2]];
    if (S[DET[i]]) s += '\n' + S[DET[i]];
    if (S[PAIR[i]]) s += '\npair ' + S[PAIR[i]];
    return s;
  }
  var tip = $('nt-tooltip'), drag = null;
  function localXY(ev) {
    var r = canvas.getBoundingClientRect();
    return { x: ev.clientX - r.left, y: ev.clientY - r.top };
  }
  canvas.addEventListener('wheel', function (ev) {
    ev.preventDefault();
    var p = localXY(ev);
    zoom(ev.deltaY > 0 ? 1.25 : 0.8, p.x);
  }, { passive: false });
  canvas.addEventListener('mousedown', function (ev) {
    var p = localXY(ev);
    drag = { x: p.x, v0: v0, v1: v1, moved: false };
    canvas.classList.add('nt-dragging');
  });
  window.addEventListener('mouseup', function (ev) {
    if (!drag) return;
    var wasClick = !drag.moved;
    drag = null;
    canvas.classList.remove('nt-dragging');
    if (wasClick && ev.target === canvas) {
      var p = localXY(ev), i = recordAt(rowAt(p.y), p.x, 6);
      select(i);
    }
  });
  window.addEventListener('mousemove', function (ev) {
    var p = localXY(ev);
    if (drag) {
      var dx = p.x - drag.x;
      if (Math.abs(dx) > 3) drag.moved = true;
      var dt = dx / W * (drag.v1 - drag.v0);
      v0 = drag.v0 - dt;
      v1 = drag.v1 - dt;
      tip.hidden = true;
      redraw();
      return;
    }
    if (ev.target !== canvas) { tip.hidden = true; return; }
    var row = rowAt(p.y), i = recordAt(row, p.x, 5), text = null;
    if (i >= 0) {
      text = describe(i);
    } else if (row && row.lane >= 0) {
      var a = lowerBound(row.lane, tOf(p.x - 0.5)), b = lowerBound(row.lane, tOf(p.x + 0.5));
      if (b - a > 1) text = (b - a) + ' transitions in this pixel: zoom in (wheel)';
    }
    if (!text) { tip.hidden = true; return; }
    tip.textContent = text;
    tip.hidden = false;
    tip.style.left = Math.min(ev.clientX + 14, window.innerWidth - 420) + 'px';
    tip.style.top = (ev.clientY + 14) + 'px';
  });
  canvas.addEventListener('mouseleave', function () { tip.hidden = true; });
  $('nt-fit').addEventListener('click', function () { fit(); redraw(); });
  $('nt-zoom-in').addEventListener('click', function () { zoom(0.5, W / 2); });
  $('nt-zoom-out').addEventListener('click', function () { zoom(2, W / 2); });
  window.addEventListener('keydown', function (ev) {
    if (ev.key === '+' || ev.key === '=') zoom(0.5, W / 2);
    else if (ev.key === '-') zoom(2, W / 2);
    else if (ev.key === '0') { fit(); redraw(); }
  });
  window.addEventListener('resize', resize);

  function select(i) {
    selected = i;
    var box = $('nt-selected');
    if (i < 0) {
      box.innerHTML = '<em>Click a transition mark for its details.</em>';
    } else {
      box.textContent = describe(i);
      box.setAttribute('data-record', String(i));
      flashChart(D.tr[TR[i]]);
    }
    redraw();
  }

  // ---- charts ------------------------------------------------------------------
  // visits per machine: distinct (from, event, to, refused) with counts
  var charts = {};
  (function () {
    var perTr = new Uint32Array(D.tr.length);
    for (var i = 0; i < N; i++) perTr[TR[i]]++;
    D.tr.forEach(function (tr, k) {
      var m = tr[0];
      if (!charts[m]) charts[m] = { machine: m, visits: [], total: 0, refused: 0 };
      charts[m].visits.push({ tr: tr, count: perTr[k] });
      charts[m].total += perTr[k];
      if (tr[4]) charts[m].refused += perTr[k];
    });
  })();

  function svgFor(machine) {
    var holders = $('nt-svgs').children;
    for (var i = 0; i < holders.length; i++)
      if (holders[i].getAttribute('data-machine') === machine) return holders[i].querySelector('svg');
    return null;
  }

  // Ragel labels edges with event numbers ("6 / retry", "'\\b' / close",
  // "1..3, 5 / sync"): the names of the events, where the data has them
  function eventKey(k) {
    var m = /^'(.*)'$/.exec(k), esc = { a: 7, b: 8, t: 9, n: 10, v: 11, f: 12, r: 13, '0': 0 };
    if (/^-?\d+$/.test(k)) return parseInt(k, 10);
    if (!m) return null;
    if (m[1].length === 1) return m[1].charCodeAt(0);
    if (m[1].length === 2 && m[1][0] === '\\') return m[1][1] in esc ? esc[m[1][1]] : m[1].charCodeAt(1);
    return null;
  }
  function eventLabel(machine, label) {
    var names = D.ev && D.ev[machine], cut = label.indexOf(' / ');
    if (!names || cut < 0) return label;
    var out = label.slice(0, cut).split(', ').map(function (item) {
      var r = item.split('..'), a = eventKey(r[0]), b = r.length === 2 ? eventKey(r[1]) : a;
      if (a === null || b === null || r.length > 2 || b < a || b - a > 64) return item;
      var ns = [];
      for (var e = a; e <= b; e++) ns.push(names[e] || String(e));
      return ns.join(', ');
    });
    return out.join(', ') + label.slice(cut);
  }

  // Ragel's graph (ragel -V -p | dot -Tsvg) numbers its states; the entry
  // edges en_K -> N labelled main_NAME give the names. Edges to err_N are the
  // error action (refusals), to eof_N the end of input (unused here).
  function prepareGraph(svg, c) {
    var names = {}, byName = {}, edges = [], errEdge = {}, nodes = {};
    svg.removeAttribute('width');
    svg.removeAttribute('height');
    Array.prototype.forEach.call(svg.querySelectorAll('g.node'), function (g) {
      var t = g.querySelector('title');
      if (t) nodes[t.textContent] = g;
    });
    Array.prototype.forEach.call(svg.querySelectorAll('g.edge'), function (g) {
      var t = g.querySelector('title'), m = t && /^(.+)->(.+)$/.exec(t.textContent);
      if (!m) return;
      var a = m[1], b = m[2], text = g.querySelector('text');
      if (/^en_/.test(a)) {
        var lab = text ? text.textContent : '';
        if (/^main_/.test(lab)) {
          var nm = lab.slice(5);
          (names[b] = names[b] || []).push(nm);
          byName[nm] = b;
          if (/^start_/.test(nm)) {
            names[b].push(nm.slice(6));
            byName[nm.slice(6)] = b;
          }
        }
        g.style.display = 'none';
      } else if (/^eof_/.test(b)) {
        g.style.display = 'none';
      } else if (/^err_/.test(b)) {
        errEdge[a] = { el: g, text: text, sink: nodes[b] };
        g.style.display = 'none';
      } else {
        var label = text ? text.textContent : '';
        if (text) text.textContent = eventLabel(S[c.machine], label);
        edges.push({ a: a, b: b, el: g, text: text, label: label, events: [], count: 0 });
        g.classList.add('nt-dim');
      }
    });
    Object.keys(nodes).forEach(function (k) {
      if (/^(en|eof|err)_/.test(k)) nodes[k].style.display = 'none';
      else if (names[k]) {
        var best = names[k].reduce(function (x, y) { return y.length < x.length ? y : x; });
        var tx = nodes[k].querySelector('text');
        if (tx) tx.textContent = best;
        nodes[k].setAttribute('data-state', best);
      }
    });
    var matched = 0, refusedShown = 0;
    c.visits.forEach(function (v) {
      var from = byName[S[v.tr[1]]], to = byName[S[v.tr[3]]], ok = false;
      if (v.tr[4]) {
        var ee = from !== undefined && errEdge[from];
        if (ee) {
          ee.el.style.display = '';
          ee.el.classList.add('nt-refused');
          ee.events = (ee.events || []).concat([S[v.tr[2]] + ' ×' + v.count]);
          if (ee.text) ee.text.textContent = ee.events.join(', ') + ' (refused)';
          if (ee.sink) { ee.sink.style.display = ''; ee.sink.classList.add('nt-refused-sink'); }
          if (nodes[from]) nodes[from].classList.add('nt-refused-at');
          ee.el.setAttribute('data-refused', ee.events.join(','));
          ok = true;
          refusedShown++;
        }
      } else if (from !== undefined && to !== undefined) {
        edges.forEach(function (e) {
          if (e.a !== from || e.b !== to) return;
          e.count += v.count;
          if (e.events.indexOf(S[v.tr[2]]) < 0) e.events.push(S[v.tr[2]]);
          ok = true;
        });
        if (ok) {
          if (nodes[from]) nodes[from].classList.add('nt-visited');
          if (nodes[to]) nodes[to].classList.add('nt-visited');
        }
      }
      v.matched = ok;
      if (ok) matched++;
    });
    edges.forEach(function (e) {
      if (!e.count) return;
      e.el.classList.remove('nt-dim');
      e.el.classList.add('nt-visited');
      e.el.setAttribute('data-count', String(e.count));
      var action = e.label.indexOf(' / ') >= 0 ? e.label.slice(e.label.indexOf(' / ')) : '';
      if (e.text) e.text.textContent = e.events.join(',') + action + ' ×' + e.count;
    });
    return { matched: matched, byName: byName, edges: edges, errEdge: errEdge };
  }

  // A drawing of the visited transitions, for a machine without a Ragel graph:
  // states on a circle, one arrow per (from, to), labelled with events and counts.
  var SVGNS = 'http://www.w3.org/2000/svg';
  function svgEl(tag, attrs, text) {
    var e = document.createElementNS(SVGNS, tag);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function ownGraph(c) {
    var states = [], idx = {};
    function add(s) { if (!(s in idx)) { idx[s] = states.length; states.push(s); } }
    c.visits.forEach(function (v) { add(S[v.tr[1]]); if (!v.tr[4]) add(S[v.tr[3]]); });
    var n = states.length, R = Math.max(90, n * 34), cx = R + 140, cy = R + 100;
    var svg = svgEl('svg', { viewBox: '0 0 ' + (2 * cx) + ' ' + (2 * cy), 'class': 'nt-own',
      width: String(Math.round(2 * cx)), height: String(Math.round(2 * cy)) });
    var defs = svgEl('defs', {});
    ['ok', 'bad'].forEach(function (k) {
      var mk = svgEl('marker', { id: 'nt-arrow-' + k + '-' + c.machine, viewBox: '0 0 10 10', refX: '10', refY: '5',
        markerWidth: '7', markerHeight: '7', orient: 'auto-start-reverse' });
      mk.appendChild(svgEl('path', { d: 'M0,0 L10,5 L0,10 z', fill: k === 'ok' ? '#1a7f37' : REFUSED_COLOUR }));
      defs.appendChild(mk);
    });
    svg.appendChild(defs);
    var pos = states.map(function (s, i) {
      var a = 2 * Math.PI * i / Math.max(n, 1) - Math.PI / 2;
      return { x: cx + R * Math.cos(a), y: cy + R * Math.sin(a) };
    });
    var pairs = {};
    c.visits.forEach(function (v) {
      var key = v.tr[4] ? 'x' + idx[S[v.tr[1]]] : idx[S[v.tr[1]]] + '>' + idx[S[v.tr[3]]];
      var p = pairs[key] || (pairs[key] = { a: idx[S[v.tr[1]]], b: v.tr[4] ? -1 : idx[S[v.tr[3]]], labels: [], count: 0, refused: !!v.tr[4] });
      p.labels.push(S[v.tr[2]] + ' ×' + v.count);
      p.count += v.count;
    });
    Object.keys(pairs).forEach(function (key) {
      var p = pairs[key], A = pos[p.a], g = svgEl('g', { 'class': 'edge ' + (p.refused ? 'nt-refused' : 'nt-visited') });
      g.appendChild(svgEl('title', {}, states[p.a] + '->' + (p.b < 0 ? 'refused' : states[p.b])));
      var d, lx, ly;
      if (p.b < 0 || p.b === p.a) {
        // a loop outside the circle: a self transition, or a refusal (dashed, red)
        var ox = (A.x - cx) / R, oy = (A.y - cy) / R;
        var qx = A.x + ox * 70, qy = A.y + oy * 70;
        d = 'M' + (A.x + ox * 22 - oy * 10) + ',' + (A.y + oy * 22 + ox * 10) + ' Q' + (qx - oy * 40) + ',' + (qy + ox * 40) +
          ' ' + (qx) + ',' + (qy) + ' Q' + (qx + oy * 40) + ',' + (qy - ox * 40) + ' ' + (A.x + ox * 22 + oy * 10) + ',' + (A.y + oy * 22 - ox * 10);
        lx = qx + ox * 10;
        ly = qy + oy * 10;
      } else {
        var B = pos[p.b], dx = B.x - A.x, dy = B.y - A.y, len = Math.sqrt(dx * dx + dy * dy) || 1;
        var ux = dx / len, uy = dy / len, mx = (A.x + B.x) / 2 - uy * 24, my = (A.y + B.y) / 2 + ux * 24;
        d = 'M' + (A.x + ux * 22) + ',' + (A.y + uy * 22) + ' Q' + mx + ',' + my + ' ' + (B.x - ux * 22) + ',' + (B.y - uy * 22);
        lx = mx;
        ly = my;
      }
      g.appendChild(svgEl('path', { d: d, fill: 'none', stroke: p.refused ? REFUSED_COLOUR : '#1a7f37', 'stroke-width': 2,
        'marker-end': 'url(#nt-arrow-' + (p.refused ? 'bad' : 'ok') + '-' + c.machine + ')' }));
      g.appendChild(svgEl('text', { x: lx, y: ly, 'text-anchor': 'middle', 'font-size': 11 }, p.labels.join(', ') + (p.refused ? ' (refused)' : '')));
      g.setAttribute('data-count', String(p.count));
      svg.appendChild(g);
    });
    states.forEach(function (s, i) {
      var g = svgEl('g', { 'class': 'node nt-visited', 'data-state': s });
      g.appendChild(svgEl('title', {}, s));
      g.appendChild(svgEl('ellipse', { cx: pos[i].x, cy: pos[i].y, rx: 22, ry: 22, fill: '#e3f4e8', stroke: '#1a7f37' }));
      g.appendChild(svgEl('text', { x: pos[i].x, y: pos[i].y + 4, 'text-anchor': 'middle', 'font-size': 11 }, s));
      svg.appendChild(g);
    });
    return svg;
  }

  var graphs = {};
  function buildCharts() {
    var box = $('nt-charts');
    Object.keys(charts).map(Number).sort(function (a, b) { return S[a] < S[b] ? -1 : S[a] > S[b] ? 1 : 0; }).forEach(function (m) {
      var c = charts[m], name = S[m];
      var sec = el('div', 'nt-chart');
      sec.id = 'nt-chart-' + name.replace(/[^A-Za-z0-9_-]/g, '_');
      sec.setAttribute('data-machine', name);
      var h = el('h3', null, name || '(no machine)');
      h.appendChild(el('small', null, c.total + ' transitions, ' + c.visits.length + ' distinct, ' + c.refused + ' refused'));
      sec.appendChild(h);
      var body = el('div', 'nt-chart-body'), gbox = el('div', 'nt-graph');
      var svg = svgFor(name), info = null;
      if (svg) {
        gbox.appendChild(svg);
        info = prepareGraph(svg, c);
        graphs[m] = info;
        sec.setAttribute('data-graph', 'ragel');
        sec.setAttribute('data-matched', String(info.matched));
      } else {
        gbox.appendChild(ownGraph(c));
        gbox.appendChild(el('div', 'nt-note', 'no Ragel graph for "' + name + '" (' + (D.charts_dir || 'no charts folder') +
          '): the visited transitions are drawn from the trace'));
        sec.setAttribute('data-graph', 'trace');
        c.visits.forEach(function (v) { v.matched = true; });
      }
      body.appendChild(gbox);
      var tab = el('table', 'nt-visits');
      var hr = el('tr');
      ['from', 'event', 'to', 'count'].forEach(function (k) { hr.appendChild(el('th', null, k)); });
      tab.appendChild(hr);
      c.visits.slice().sort(function (a, b) { return b.count - a.count; }).forEach(function (v) {
        var tr = el('tr', (v.tr[4] ? 'nt-refused' : '') + (v.matched ? '' : ' nt-unmatched'));
        tr.setAttribute('data-from', S[v.tr[1]]);
        tr.setAttribute('data-event', S[v.tr[2]]);
        tr.setAttribute('data-to', v.tr[4] ? '' : S[v.tr[3]]);
        tr.setAttribute('data-count', String(v.count));
        if (v.tr[4]) tr.setAttribute('data-refused', '1');
        if (!v.matched) tr.title = 'not found in the chart graph';
        tr.appendChild(el('td', null, S[v.tr[1]]));
        tr.appendChild(el('td', null, S[v.tr[2]]));
        tr.appendChild(el('td', null, v.tr[4] ? '(refused)' : S[v.tr[3]]));
        tr.appendChild(el('td', 'nt-count', String(v.count)));
        tab.appendChild(tr);
      });
      body.appendChild(tab);
      sec.appendChild(body);
      sec.setAttribute('data-visited', String(c.visits.length));
      sec.setAttribute('data-transitions', String(c.total));
      sec.setAttribute('data-refused', String(c.refused));
      box.appendChild(sec);
    });
  }

  function flashChart(tr) {
    Array.prototype.forEach.call(document.querySelectorAll('.nt-flash'), function (e) { e.classList.remove('nt-flash'); });
    var g = graphs[tr[0]];
    if (!g) return;
    var a = g.byName[S[tr[1]]], b = g.byName[S[tr[3]]];
    if (tr[4]) {
      if (g.errEdge[a]) g.errEdge[a].el.classList.add('nt-flash');
    } else {
      g.edges.forEach(function (e) { if (e.a === a && e.b === b) e.el.classList.add('nt-flash'); });
    }
  }

  buildCharts();
  resize();
  var drawStart = window.performance.now();
  draw(); // at once too, so that a screenshot taken at load shows the lanes
  var status = $('nt-status');
  status.setAttribute('data-init-ms', String(Math.round(drawStart - started)));
  status.setAttribute('data-draw-ms', String(Math.round(window.performance.now() - drawStart)));
  status.setAttribute('data-records', String(N));
  status.setAttribute('data-lanes', String(nlanes));
  status.setAttribute('data-charts', String(Object.keys(charts).length));
  status.setAttribute('data-refused', String(totalRefused));
  status.setAttribute('data-ready', '1');
})();

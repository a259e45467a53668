// LineChart: uPlot wrapper with growable typed-array buffers, min/max bucket
// downsampling (so 100,000+ points still redraw fast), a log-scale toggle, and overlay
// curves with their own x values (other models' losses) merged in at draw time.
import uPlot from '../../vendor/uplot/uPlot.esm.js';
import { formatNum } from './palette.js';

class Buffer {
  constructor() { this.a = new Float64Array(1024); this.n = 0; }
  push(v) {
    if (this.n === this.a.length) { const b = new Float64Array(this.a.length * 2); b.set(this.a); this.a = b; }
    this.a[this.n++] = v;
  }
}

/** Min/max downsampling over index buckets; keeps spikes visible. */
export function downsample(xs, ys, n, maxPoints) {
  if (n <= maxPoints) {
    return [Array.from(xs.subarray(0, n)), ...ys.map((y) => Array.from(y.subarray(0, n)))];
  }
  const buckets = Math.floor(maxPoints / 2);
  const outX = []; const outY = ys.map(() => []);
  for (let b = 0; b < buckets; b++) {
    const i0 = Math.floor((b * n) / buckets); const i1 = Math.max(i0 + 1, Math.floor(((b + 1) * n) / buckets));
    outX.push(xs[i0], xs[i1 - 1]);
    ys.forEach((y, s) => {
      let lo = Infinity; let hi = -Infinity; let iLo = i0; let iHi = i0;
      for (let i = i0; i < i1; i++) {
        const v = y[i];
        if (v < lo) { lo = v; iLo = i; }
        if (v > hi) { hi = v; iHi = i; }
      }
      if (lo === Infinity) { outY[s].push(NaN, NaN); return; }
      if (iLo <= iHi) outY[s].push(lo, hi); else outY[s].push(hi, lo);
    });
  }
  return [outX, ...outY];
}

/**
 * Align the chart's own columns [x, ...ys] with overlays [{x, y}] on one sorted x axis:
 * every point keeps its own row, with null in every other series (spanGaps joins the lines).
 */
export function mergeOverlays(data, overlays) {
  const rows = [];
  data[0].forEach((x, i) => rows.push([x, -1, i]));
  overlays.forEach((o, k) => { for (let i = 0; i < o.x.length; i++) rows.push([o.x[i], k, i]); });
  rows.sort((a, b) => a[0] - b[0] || a[1] - b[1] || a[2] - b[2]);
  const nMain = data.length - 1;
  const out = [rows.map((r) => r[0])];
  for (let s = 0; s < nMain; s++) out.push(rows.map((r) => (r[1] === -1 ? data[s + 1][r[2]] : null)));
  overlays.forEach((o, k) => out.push(rows.map((r) => (r[1] === k ? o.y[r[2]] : null))));
  return out;
}

/** Compact tick label: 0.5, 120, 1e-6. */
function tick(v) {
  const a = Math.abs(v);
  if (a === 0) return '0';
  if (a < 1e-3 || a >= 1e5) return v.toExponential(1).replace('.0e', 'e').replace('e+', 'e');
  return formatNum(v, 4);
}

/** Decade ticks on a log axis, thinned so labels never overlap. */
function logSplits(u, axisIdx, min, max) {
  const lo = Math.floor(Math.log10(min)); const hi = Math.ceil(Math.log10(max));
  const room = Math.max(2, Math.floor(u.bbox.height / (window.devicePixelRatio || 1) / 22));
  const step = Math.max(1, Math.ceil((hi - lo) / room));
  const out = [];
  for (let e = hi; e >= lo; e -= step) { const v = 10 ** e; if (v >= min && v <= max) out.unshift(v); }
  return out.length ? out : [min, max];
}

export class LineChart {
  /** @param {HTMLElement} el  @param {object} opts {series:[{label, stroke, dash}], logY, height, maxPoints, yLabel} */
  constructor(el, opts) {
    this.el = el; this.opts = { height: 160, maxPoints: 800, maxStored: 400000, ...opts };
    this.logY = !!opts.logY;
    this.overlays = []; this.overlayKey = '';
    this.xs = new Buffer();
    this.ys = opts.series.map(() => new Buffer());
    this.dirty = true;
    this._build();
    this.ro = new ResizeObserver(() => this._resize());
    this.ro.observe(el);
  }

  _width() { return Math.max(120, Math.floor(this.el.clientWidth || 300)); }

  _build() {
    if (this.plot) this.plot.destroy();
    const fmt = (u, vals) => vals.map((v) => (v === null ? '' : tick(v)));
    const yScale = this.logY ? { distr: 3, log: 10 } : { auto: true };
    const yAxis = { stroke: '#555', grid: { stroke: '#eee' }, size: 46, values: fmt, label: this.opts.yLabel, labelSize: 14 };
    if (this.logY) yAxis.splits = logSplits;
    this.plot = new uPlot({
      width: this._width(),
      height: this.opts.height,
      scales: { x: { time: false }, y: yScale },
      legend: { show: true, live: this.opts.legendLive !== false },
      cursor: { drag: { x: false, y: false }, points: { size: 5 } },
      axes: [
        { stroke: '#555', grid: { stroke: '#eee' }, size: 28, values: fmt },
        yAxis,
      ],
      series: [
        { label: 'step', value: (u, v) => (v === null || v === undefined ? '–' : Math.round(v)) },
        ...[...this.opts.series, ...this.overlays].map((s) => ({
          label: s.label, stroke: s.stroke, width: s.width || 1.6, dash: s.dash, spanGaps: true,
          points: { show: false }, value: (u, v) => formatNum(v, 4),
        })),
      ],
    }, [[], ...this.opts.series.map(() => []), ...this.overlays.map(() => [])], this.el);
    this.dirty = true;
  }

  _resize() {
    const w = this._width();
    if (this.plot && Math.abs(this.plot.width - w) > 2) { this.plot.setSize({ width: w, height: this.opts.height }); this.dirty = true; }
  }

  destroy() { this.ro.disconnect(); if (this.plot) this.plot.destroy(); this.plot = null; }

  setLog(on) { if (on !== this.logY) { this.logY = on; this._build(); } }

  /** Extra curves with their own x: [{label, stroke, dash?, width?, x: [...], y: [...]}] ([] removes them). */
  setOverlays(list) {
    const key = list.map((o) => `${o.label}|${o.stroke}|${o.dash}`).join(';');
    this.overlays = list;
    if (key !== this.overlayKey) { this.overlayKey = key; this._build(); }
    this.dirty = true;
  }

  /** Number of drawn series (own + overlays), for tests. */
  get seriesCount() { return this.plot ? this.plot.series.length - 1 : 0; }

  /** Append one x with one y per series (null/NaN = gap). */
  push(x, ...ys) {
    if (this.xs.n >= this.opts.maxStored) this._compact();
    this.xs.push(x);
    this.ys.forEach((b, i) => { const v = ys[i]; b.push(v === null || v === undefined ? NaN : v); });
    this.dirty = true;
  }

  /** Halve the stored points (pairwise: first x, mean of the finite ys) to bound memory. */
  _compact() {
    const n = this.xs.n; const h = Math.floor(n / 2);
    for (let i = 0; i < h; i++) this.xs.a[i] = this.xs.a[2 * i];
    for (const b of this.ys) {
      for (let i = 0; i < h; i++) {
        const p = b.a[2 * i]; const q = b.a[2 * i + 1];
        b.a[i] = Number.isNaN(p) ? q : Number.isNaN(q) ? p : (p + q) / 2;
      }
      b.n = h;
    }
    this.xs.n = h;
  }

  get length() { return this.xs.n; }

  clear() {
    this.xs.n = 0; this.ys.forEach((b) => { b.n = 0; });
    this.dirty = true;
  }

  render() {
    if (!this.dirty) return false;
    this.dirty = false;
    const n = this.xs.n;
    let data = downsample(this.xs.a, this.ys.map((b) => b.a), n, this.opts.maxPoints);
    if (this.overlays.length) data = mergeOverlays(data, this.overlays);
    for (let s = 1; s < data.length; s++) {
      const col = data[s];
      for (let i = 0; i < col.length; i++) {
        const v = col[i];
        if (!Number.isFinite(v) || (this.logY && v <= 0)) col[i] = null;
      }
    }
    this.plot.setData(data);
    return true;
  }
}

// LineChart: uPlot wrapper with growable typed-array buffers, min/max bucket
// downsampling (so 100,000+ points still redraw fast) and a log-scale toggle.
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

export class LineChart {
  /** @param {HTMLElement} el  @param {object} opts {series:[{label, stroke, dash}], logY, height, maxPoints, yLabel} */
  constructor(el, opts) {
    this.el = el; this.opts = { height: 160, maxPoints: 800, ...opts };
    this.logY = !!opts.logY;
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
    const fmt = (u, vals) => vals.map((v) => (v === null ? '' : formatNum(v, 2)));
    const yScale = this.logY ? { distr: 3, log: 10 } : { auto: true };
    this.plot = new uPlot({
      width: this._width(),
      height: this.opts.height,
      scales: { x: { time: false }, y: yScale },
      legend: { show: true, live: true },
      cursor: { drag: { x: false, y: false }, points: { size: 5 } },
      axes: [
        { stroke: '#555', grid: { stroke: '#eee' }, size: 28, values: fmt },
        { stroke: '#555', grid: { stroke: '#eee' }, size: 46, values: fmt, label: this.opts.yLabel, labelSize: 14 },
      ],
      series: [
        { label: 'step', value: (u, v) => (v === null || v === undefined ? '–' : Math.round(v)) },
        ...this.opts.series.map((s) => ({
          label: s.label, stroke: s.stroke, width: s.width || 1.6, dash: s.dash, spanGaps: true,
          points: { show: false }, value: (u, v) => formatNum(v, 4),
        })),
      ],
    }, [[], ...this.opts.series.map(() => [])], this.el);
    this.dirty = true;
  }

  _resize() {
    const w = this._width();
    if (this.plot && Math.abs(this.plot.width - w) > 2) { this.plot.setSize({ width: w, height: this.opts.height }); this.dirty = true; }
  }

  destroy() { this.ro.disconnect(); if (this.plot) this.plot.destroy(); this.plot = null; }

  setLog(on) { if (on !== this.logY) { this.logY = on; this._build(); } }

  /** Append one x with one y per series (null/NaN = gap). */
  push(x, ...ys) {
    this.xs.push(x);
    this.ys.forEach((b, i) => { const v = ys[i]; b.push(v === null || v === undefined ? NaN : v); });
    this.dirty = true;
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
    const data = downsample(this.xs.a, this.ys.map((b) => b.a), n, this.opts.maxPoints);
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

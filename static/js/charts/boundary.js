// BoundaryPlot: model output over the input plane as a heatmap (diverging palette)
// with train points (white ring) and test points (dark ring). For 1-D data it draws
// the data as a scatter and the model's prediction as a curve instead.
import { fillRGBA, maxAbs, cssColor, makeLegend } from './palette.js';

export class BoundaryPlot {
  constructor(container, { size = 300 } = {}) {
    this.size = size;
    this.canvas = document.createElement('canvas');
    this.canvas.setAttribute('role', 'img');
    this.canvas.setAttribute('aria-label', 'decision boundary: model output over the input plane with data points');
    const dpr = window.devicePixelRatio || 1;
    this.canvas.width = size * dpr; this.canvas.height = size * dpr;
    this.canvas.style.width = `${size}px`; this.canvas.style.height = `${size}px`;
    this.ctx = this.canvas.getContext('2d');
    this.ctx.scale(dpr, dpr);
    this.off = document.createElement('canvas');
    container.appendChild(this.canvas);
    this.legend = makeLegend(container, 'output');
    this.showTest = true;
    this.data = null; this.grid = null; this.curve = null;
  }

  /** data: GET /data response. */
  setData(data) {
    this.data = data; this.grid = null; this.curve = null;
    this.kind = data ? data.kind : 'classification';
    this.oneD = !!(data && data.train.X.length && data.train.X[0].length === 1);
    const all = data ? [...data.train.X, ...data.test.X] : [];
    const ext = (k) => {
      let lo = Infinity; let hi = -Infinity;
      for (const p of all) { if (p[k] < lo) lo = p[k]; if (p[k] > hi) hi = p[k]; }
      if (!Number.isFinite(lo)) return [-6, 6];
      const pad = (hi - lo) * 0.05 || 1; return [lo - pad, hi + pad];
    };
    this.xRange = ext(0);
    if (this.oneD) {
      const ys = data ? [...data.train.y, ...data.test.y].map((r) => r[0]) : [0];
      const lo = Math.min(...ys); const hi = Math.max(...ys); const pad = (hi - lo) * 0.1 || 1;
      this.yRange = [lo - pad, hi + pad];
    } else this.yRange = ext(1);
    const labels = data ? [...data.train.y, ...data.test.y] : [];
    this.K = labels.length && labels[0].length > 1 ? labels[0].length : 2;
    this.yMax = this.kind === 'regression' ? maxAbs(labels.map((r) => r[0])) || 1 : 1;
  }

  setBoundary(b) {
    if (!b || !b.output) return;
    this.grid = b.output; this.xRange = b.x_range; this.yRange = b.y_range;
  }

  setCurve(xs, ys) { this.curve = { xs, ys }; }

  _labelValue(y) {
    if (y.length > 1) { let k = 0; for (let i = 1; i < y.length; i++) if (y[i] > y[k]) k = i; return k / (y.length - 1); }
    return y[0];
  }

  _px(x, y) {
    const [x0, x1] = this.xRange; const [y0, y1] = this.yRange; const s = this.size;
    return [((x - x0) / (x1 - x0)) * s, s - ((y - y0) / (y1 - y0)) * s];
  }

  render() {
    const { ctx, size } = this;
    ctx.clearRect(0, 0, size, size);
    ctx.fillStyle = '#fafafa'; ctx.fillRect(0, 0, size, size);
    const cls = this.kind !== 'regression';
    const offset = cls ? 0.5 : 0; const max = cls ? 0.5 : this.yMax;
    if (this.oneD) this._render1D(); else if (this.grid) {
      const R = this.grid.length; const C = this.grid[0].length;
      if (this.off.width !== C || this.off.height !== R) { this.off.width = C; this.off.height = R; }
      const octx = this.off.getContext('2d');
      const img = octx.createImageData(C, R);
      fillRGBA(img.data, this.grid, max, { flipY: true, offset });
      octx.putImageData(img, 0, 0);
      ctx.imageSmoothingEnabled = true;
      ctx.globalAlpha = 0.62;
      ctx.drawImage(this.off, 0, 0, size, size);
      ctx.globalAlpha = 1;
    }
    if (!this.oneD) this._points(offset, max);
    this.legend.el.hidden = this.oneD;
    if (cls) this.legend.set(0.5, 0, 1); else this.legend.set(max);
  }

  _points(offset, max) {
    if (!this.data) return;
    const { ctx } = this;
    const sets = [[this.data.train, '#ffffff']];
    if (this.showTest) sets.push([this.data.test, '#222222']);
    for (const [set, ring] of sets) {
      ctx.lineWidth = 1;
      ctx.strokeStyle = ring;
      for (let i = 0; i < set.X.length; i++) {
        const [px, py] = this._px(set.X[i][0], set.X[i][1]);
        ctx.beginPath(); ctx.arc(px, py, 3.2, 0, 2 * Math.PI);
        ctx.fillStyle = cssColor(this._labelValue(set.y[i]) - offset, max);
        ctx.fill(); ctx.stroke();
      }
    }
  }

  _render1D() {
    const { ctx } = this;
    const sets = [[this.data.train, '#8073ac', true]];
    if (this.showTest) sets.push([this.data.test, '#e08214', false]);
    for (const [set, color, filled] of sets) {
      for (let i = 0; i < set.X.length; i++) {
        const [px, py] = this._px(set.X[i][0], set.y[i][0]);
        ctx.beginPath(); ctx.arc(px, py, 3, 0, 2 * Math.PI);
        ctx.strokeStyle = color; ctx.fillStyle = color;
        if (filled) ctx.fill(); else ctx.stroke();
      }
    }
    if (!this.curve) return;
    ctx.beginPath(); ctx.strokeStyle = '#222'; ctx.lineWidth = 2;
    this.curve.xs.forEach((x, i) => {
      const [px, py] = this._px(x, this.curve.ys[i]);
      if (i === 0) ctx.moveTo(px, py); else ctx.lineTo(px, py);
    });
    ctx.stroke();
  }
}

// HeatMap: a matrix drawn 1 pixel per entry with putImageData, scaled up by CSS
// (image-rendering: pixelated), on a diverging palette centred at 0, with a legend.
import { fillRGBA, maxAbs, makeLegend, formatNum } from './palette.js';

export class HeatMap {
  /**
   * @param {HTMLElement} container where the canvas and legend go
   * @param {object} opts {className, layer, label, maxPx, ariaLabel, onHover}
   */
  constructor(container, opts = {}) {
    this.opts = opts;
    this.wrap = document.createElement('div');
    this.wrap.className = 'heatmap-wrap';
    this.canvas = document.createElement('canvas');
    this.canvas.className = `heatmap ${opts.className || ''}`.trim();
    if (opts.layer !== undefined) this.canvas.dataset.layer = String(opts.layer);
    this.canvas.setAttribute('role', 'img');
    this.canvas.setAttribute('aria-label', opts.ariaLabel || opts.label || 'heatmap');
    this.ctx = this.canvas.getContext('2d');
    this.wrap.appendChild(this.canvas);
    this.readout = document.createElement('div');
    this.readout.className = 'heatmap-readout';
    this.readout.setAttribute('aria-live', 'off');
    this.readout.textContent = '\u00a0';
    this.legend = makeLegend(this.wrap, opts.legendLabel || '');
    this.wrap.appendChild(this.readout);
    container.appendChild(this.wrap);
    this.rows = 0; this.cols = 0; this.matrix = null; this.hover = null;
    this.canvas.addEventListener('mousemove', (e) => this._onMove(e));
    this.canvas.addEventListener('mouseleave', () => { this.hover = null; this._showReadout(); });
  }

  setShape(rows, cols) {
    if (rows === this.rows && cols === this.cols) return;
    this.rows = rows; this.cols = cols;
    this.canvas.width = Math.max(cols, 1);
    this.canvas.height = Math.max(rows, 1);
    const maxPx = this.opts.maxPx || 160;
    const m = Math.max(rows, cols, 1);
    const cell = m * 3 <= maxPx ? Math.min(22, Math.floor(maxPx / m)) : maxPx / m;
    this.canvas.style.width = `${cols * cell}px`;
    this.canvas.style.height = `${rows * cell}px`;
    this.image = this.ctx.createImageData(this.canvas.width, this.canvas.height);
  }

  /** Draw a matrix (array of rows). A 1-D array is drawn as one column. */
  draw(matrix, max) {
    if (!matrix) return;
    const m = Array.isArray(matrix[0]) ? matrix : matrix.map((v) => [v]);
    this.setShape(m.length, m[0] ? m[0].length : 0);
    const scale = max !== undefined ? max : maxAbs(m);
    fillRGBA(this.image.data, m, scale || 1);
    this.ctx.putImageData(this.image, 0, 0);
    this.legend.set(scale);
    this.matrix = m;
    if (this.hover) this._showReadout();
  }

  _onMove(e) {
    const rect = this.canvas.getBoundingClientRect();
    const c = Math.floor(((e.clientX - rect.left) / rect.width) * this.cols);
    const r = Math.floor(((e.clientY - rect.top) / rect.height) * this.rows);
    if (r < 0 || c < 0 || r >= this.rows || c >= this.cols) return;
    this.hover = [r, c];
    this._showReadout();
  }

  _showReadout() {
    if (!this.hover || !this.matrix) { this.readout.textContent = '\u00a0'; return; }
    const [r, c] = this.hover;
    const v = this.matrix[r] ? this.matrix[r][c] : undefined;
    const name = this.opts.label || 'M';
    this.readout.textContent = `${name}[${r + 1},${c + 1}] = ${formatNum(v, 4)}`;
    if (this.opts.onHover) this.opts.onHover(r, c, v);
  }
}

// NetworkDiagram: SVG edges coloured (sign) and sized (|w|) by weight, HTML nodes on
// top (optionally a small canvas thumbnail per neuron), hover cards showing values.
import { cssColor, fillRGBA, maxAbs, formatNum } from './palette.js';

const SVGNS = 'http://www.w3.org/2000/svg';
const NODE = 30;
const GAP = 12;
const MAX_UNITS_DRAWN = 64;   // bigger layers are summarised instead of drawn
const MAX_EDGES = 5000;

export class NetworkDiagram {
  constructor(container, { onLayerHover } = {}) {
    this.el = container;
    this.el.classList.add('network');
    this.onLayerHover = onLayerHover || (() => {});
    this.svg = document.createElementNS(SVGNS, 'svg');
    this.svg.setAttribute('aria-hidden', 'true');
    this.nodesEl = document.createElement('div');
    this.nodesEl.className = 'network-nodes';
    this.card = document.createElement('div');
    this.card.className = 'hovercard';
    this.card.hidden = true;
    this.el.append(this.svg, this.nodesEl, this.card);
    this.params = null;
    new ResizeObserver(() => { if (this.structure && Math.abs(this.el.clientWidth - this.width) > 4) this._layout(); })
      .observe(this.el);
  }

  /** structure: {inputs: [names], layers: [{units, activation}], thumbs: bool} */
  setStructure(structure) { this.structure = structure; this.params = null; this._layout(); }

  _layout() {
    const { inputs, layers } = this.structure;
    const sizes = [inputs.length, ...layers.map((l) => l.units)];
    const edges = sizes.slice(1).reduce((acc, n, i) => acc + n * sizes[i], 0);
    if (Math.max(...sizes) > MAX_UNITS_DRAWN || edges > MAX_EDGES) {
      this.svg.replaceChildren(); this.nodesEl.replaceChildren(); this.edges = null; this.thumbs = null;
      this.el.style.height = 'auto';
      const p = document.createElement('p'); p.className = 'hint';
      p.textContent = `Network too large to draw (${sizes.join(' → ')} units, ${edges} weights); ` +
        'see the heatmaps below.';
      this.nodesEl.appendChild(p);
      return;
    }
    const maxN = Math.max(...sizes);
    this.width = Math.max(240, this.el.clientWidth || 400);
    const height = Math.max(120, maxN * (NODE + GAP) + GAP + 16);
    this.svg.setAttribute('width', this.width); this.svg.setAttribute('height', height);
    this.el.style.height = `${height}px`;
    const margin = 45;
    const colX = sizes.map((_, i) => margin + (i * (this.width - 2 * margin)) / (sizes.length - 1));
    this.pos = sizes.map((n, i) => Array.from({ length: n }, (_, j) => [colX[i],
      16 + (height - 16) / 2 + (j - (n - 1) / 2) * (NODE + GAP)]));
    this.svg.replaceChildren(); this.nodesEl.replaceChildren();
    this.edges = [];
    for (let i = 1; i < sizes.length; i++) {
      const lay = [];
      for (let r = 0; r < sizes[i]; r++) {
        const row = [];
        for (let c = 0; c < sizes[i - 1]; c++) {
          const [x0, y0] = this.pos[i - 1][c]; const [x1, y1] = this.pos[i][r];
          const xm = (x0 + x1) / 2;
          const p = document.createElementNS(SVGNS, 'path');
          p.setAttribute('d', `M${x0 + NODE / 2},${y0} C${xm},${y0} ${xm},${y1} ${x1 - NODE / 2},${y1}`);
          p.setAttribute('class', 'edge');
          p.addEventListener('mouseenter', (e) => this._edgeCard(e, i, r, c));
          p.addEventListener('mouseleave', () => this._hide());
          this.svg.appendChild(p); row.push(p);
        }
        lay.push(row);
      }
      this.edges.push(lay);
    }
    this.thumbs = sizes.map((n, i) => this.pos[i].map(([x, y], j) => this._node(i, j, x, y)));
    sizes.forEach((n, i) => {
      const t = document.createElementNS(SVGNS, 'text');
      t.setAttribute('x', colX[i]); t.setAttribute('y', 10); t.setAttribute('class', 'col-label');
      t.textContent = i === 0 ? 'input' : i === sizes.length - 1 ? 'output' : `hidden ${i}`;
      this.svg.appendChild(t);
    });
    if (this.params) this.update(this.params);
  }

  _node(i, j, x, y) {
    const { inputs, layers } = this.structure;
    const d = document.createElement('div');
    d.className = `node${i === 0 ? ' node-input' : ''}${this.structure.thumbs ? '' : ' plain'}`;
    d.style.left = `${x - NODE / 2}px`; d.style.top = `${y - NODE / 2}px`;
    d.style.width = `${NODE}px`; d.style.height = `${NODE}px`;
    d.tabIndex = 0;
    const name = i === 0 ? inputs[j] : `layer ${i} unit ${j + 1} (${layers[i - 1].activation})`;
    d.setAttribute('role', 'img');   // aria-label needs a role; focus shows the unit's values in the hover card
    d.setAttribute('aria-label', name);
    d.dataset.layer = String(i);
    let canvas = null;
    if (this.structure.thumbs) {
      canvas = document.createElement('canvas'); canvas.width = 1; canvas.height = 1;
      d.appendChild(canvas);
    }
    if (i === 0) { const s = document.createElement('span'); s.className = 'node-name'; s.textContent = inputs[j]; d.appendChild(s); }
    const show = (e) => { this._nodeCard(e, i, j); if (i > 0) this.onLayerHover(i); };
    const hide = () => { this._hide(); this.onLayerHover(null); };
    d.addEventListener('mouseenter', show); d.addEventListener('focus', show);
    d.addEventListener('mouseleave', hide); d.addEventListener('blur', hide);
    this.nodesEl.appendChild(d);
    return canvas;
  }

  /** layers: [{W, b, dW, db}] */
  update(layers) {
    this.params = layers;
    if (!this.edges || !layers || layers.length !== this.edges.length) return;
    const max = Math.max(1e-12, ...layers.map((l) => maxAbs(l.W)));
    layers.forEach((l, k) => {
      const E = this.edges[k];
      for (let r = 0; r < E.length && r < l.W.length; r++) {
        for (let c = 0; c < E[r].length; c++) {
          const w = l.W[r][c];
          const p = E[r][c];
          p.style.stroke = cssColor(w, max);
          p.style.strokeWidth = (0.6 + (4.4 * Math.min(1, Math.abs(w) / max))).toFixed(2);
        }
      }
    });
  }

  /** grids: per column (0 = inputs) an array of 2-D grids, or null; opts per column {offset,max}. */
  setThumbs(grids, scales = []) {
    if (!this.structure || !this.structure.thumbs || !this.thumbs) return;
    grids.forEach((col, i) => {
      if (!col || !this.thumbs[i]) return;
      col.forEach((g, j) => {
        const cv = this.thumbs[i][j];
        if (!cv || !g || !g.length) return;
        if (cv.width !== g[0].length || cv.height !== g.length) { cv.width = g[0].length; cv.height = g.length; }
        const ctx = cv.getContext('2d');
        const img = ctx.createImageData(cv.width, cv.height);
        const s = scales[i] || {};
        fillRGBA(img.data, g, s.max || maxAbs(g) || 1, { flipY: true, offset: s.offset || 0 });
        ctx.putImageData(img, 0, 0);
      });
    });
  }

  _place(e, html) {
    this.card.innerHTML = html; this.card.hidden = false;
    const box = this.el.getBoundingClientRect();
    const t = e.target.getBoundingClientRect ? e.target.getBoundingClientRect() : box;
    const x = (e.clientX || t.left + t.width / 2) - box.left; const y = (e.clientY || t.top) - box.top;
    this.card.style.left = `${Math.min(x + 12, this.width - 190)}px`; this.card.style.top = `${y + 12}px`;
  }

  _hide() { this.card.hidden = true; }

  _edgeCard(e, i, r, c) {
    const l = this.params && this.params[i - 1];
    const w = l ? l.W[r][c] : NaN; const g = l && l.dW ? l.dW[r][c] : NaN;
    const from = i === 1 ? this.structure.inputs[c] : `z<sub>${i - 1}</sub>[${c + 1}]`;
    this._place(e, `<b>W<sub>${i}</sub>[${r + 1},${c + 1}]</b> = ${formatNum(w, 4)}<br>` +
      `dW<sub>${i}</sub>[${r + 1},${c + 1}] = ${formatNum(g, 4)}<br><small>${from} → a<sub>${i}</sub>[${r + 1}]</small>`);
  }

  _nodeCard(e, i, j) {
    if (i === 0) { this._place(e, `input feature <b>${this.structure.inputs[j]}</b>`); return; }
    const l = this.params && this.params[i - 1];
    const b = l && l.b ? formatNum(l.b[j], 4) : '–'; const db = l && l.db ? formatNum(l.db[j], 4) : '–';
    this._place(e, `<b>layer ${i}, unit ${j + 1}</b> (${this.structure.layers[i - 1].activation})<br>` +
      `b<sub>${i}</sub>[${j + 1}] = ${b}<br>db<sub>${i}</sub>[${j + 1}] = ${db}`);
  }
}

// Per-layer W_i and dW_i heatmaps (out x in, shapes labelled; b_i and db_i as
// strips) and per-layer gradient-norm curves on a log scale.
import { HeatMap } from '../charts/heatmap.js';
import { LineChart } from '../charts/linechart.js';
import { formatNum } from '../charts/palette.js';

const $ = (id) => document.getElementById(id);
export const LAYER_COLORS = ['#0072B2', '#E69F00', '#009E73', '#CC79A7', '#56B4E9', '#D55E00', '#000000', '#F0E442'];

const shape = (m) => (m && m.length ? `${m.length}×${Array.isArray(m[0]) ? m[0].length : 1}` : '–');

export class LayersView {
  constructor({ events }) {
    this.root = $('layer-maps'); this.cards = []; this.chart = null; this.lastStep = -1;
    events.on('model', (model) => this.setModel(model));
    events.on('frame', (frame) => this.ingest(frame));
  }

  setModel(model) {
    const layers = model.spec.layers;
    this.root.replaceChildren();
    this.cards = layers.map((l, k) => this._card(k + 1, l, k === layers.length - 1));
    if (this.chart) this.chart.destroy();
    $('grad-chart').replaceChildren();
    this.chart = new LineChart($('grad-chart'), {
      series: layers.map((_, k) => ({ label: `‖dW${k + 1}‖`, stroke: LAYER_COLORS[k % LAYER_COLORS.length] })),
      logY: true, height: 170, yLabel: '‖dW‖', maxPoints: 800,
    });
    this.lastStep = -1;
  }

  _card(i, layer, isOutput) {
    const card = document.createElement('figure');
    card.className = 'layer-card'; card.dataset.layer = String(i);
    const cap = document.createElement('figcaption');
    cap.innerHTML = `<b>Layer ${i}</b> ${isOutput ? '(output) ' : ''}<span class="act">${layer.activation}</span> ` +
      `<span class="norm" title="Frobenius norm of dW">‖dW<sub>${i}</sub>‖ = <span class="norm-v">–</span></span>`;
    card.appendChild(cap);
    const row = document.createElement('div'); row.className = 'maps';
    const mk = (cls, sym, aria) => {
      const box = document.createElement('div'); box.className = `map map-${cls}`;
      const h = document.createElement('div'); h.className = 'map-title';
      h.innerHTML = `${sym}<sub>${i}</sub> <span class="shape"></span>`;
      box.appendChild(h); row.appendChild(box);
      const hm = new HeatMap(box, { className: `heatmap-${cls}`, layer: i, label: `${sym}${i}`, ariaLabel: aria, maxPx: 150 });
      return { hm, shapeEl: h.querySelector('.shape') };
    };
    const W = mk('W', 'W', `weights W${i} heatmap`);
    const b = mk('b', 'b', `bias b${i}`);
    const dW = mk('dW', 'dW', `gradient dW${i} heatmap`);
    const db = mk('db', 'db', `bias gradient db${i}`);
    card.appendChild(row);
    this.root.appendChild(card);
    return { card, W, b, dW, db, norm: cap.querySelector('.norm-v') };
  }

  ingest(frame) {
    if (!this.chart || !frame.grad_norms || !frame.grad_norms.length) return;
    if (frame.step < this.lastStep) this.chart.clear();
    if (frame.step !== this.lastStep) { this.chart.push(frame.step, ...frame.grad_norms); this.lastStep = frame.step; }
  }

  render(frame) {
    const stale = $('layers-stale');
    if (frame && stale.hidden !== !frame.layersStale) stale.hidden = !frame.layersStale;
    if (frame && frame.layers) {
      frame.layers.forEach((l, k) => {
        const c = this.cards[k];
        if (!c) return;
        this._draw(c.W, l.W); this._draw(c.dW, l.dW);
        this._draw(c.b, l.b); this._draw(c.db, l.db);
        c.norm.textContent = formatNum(frame.grad_norms ? frame.grad_norms[k] : NaN, 3);
      });
    }
    if (this.chart) this.chart.render();
  }

  _draw(part, m) {
    const box = part.hm.wrap.parentElement;
    box.hidden = !m;
    if (!m) return;
    part.hm.draw(m);
    const s = shape(Array.isArray(m[0]) ? m : m.map((v) => [v]));
    if (part.shapeEl.textContent !== `(${s})`) part.shapeEl.textContent = `(${s})`;
  }
}

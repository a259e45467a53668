// Backprop trace panel (GET /trace): forward and backward equations with live
// shapes, transposed operands highlighted, per-layer shapes of a, z, delta on hover,
// and the closed-form gradient when the server has one.
import { api } from '../api.js';

const fmtShape = (s) => (Array.isArray(s) ? `(${s.join('×')})` : s === null || s === undefined ? '' : String(s));
const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' }[c]));
/** Escaped equation with subscripts, superscript transposes (highlighted) and Greek delta. */
export function prettyEquation(eq) {
  return esc(eq)
    .replace(/\bdelta\b|delta(?=_)/g, 'δ')
    .replace(/\by_hat\b/g, 'ŷ')
    .replace(/\bsum(?=_)/g, 'Σ')
    .replace(/\^T\b/g, '<sup class="tr" title="transposed">T</sup>')
    .replace(/([A-Za-zδ')]+)_(\d+|[A-Za-z])\b/g, '$1<sub>$2</sub>');
}
const baseName = (t) => String(t || '').replace(/[_^]?\{?\d+\}?$/, '').replace(/^δ$/, 'delta').toLowerCase();

export class TraceView {
  constructor(app) {
    this.app = app; this.root = document.getElementById('trace'); this.trace = null; this.req = 0;
  }

  async load(modelId, batchSize) {
    const req = ++this.req;
    try {
      const t = await api.trace(modelId, batchSize || undefined);
      if (req === this.req) this._show(t);
    } catch (err) {
      if (req === this.req) this.root.innerHTML = `<p class="field-error">Trace unavailable: ${esc(err.message)}</p>`;
    }
  }

  _step(s) {
    const ops = (s.operands || []).map((o) => `<span class="operand${o.transposed ? ' transposed' : ''}"` +
      `${o.transposed ? ' title="transposed operand"' : ''}>${prettyEquation(o.name)}${o.transposed ? '<sup>T</sup>' : ''}` +
      ` <span class="shape">${esc(fmtShape(o.shape))}</span></span>`).join('<span class="op-sep">·</span>');
    return `<li class="trace-step" data-layer="${esc(s.layer)}">` +
      `<code class="eq">${prettyEquation(s.equation)}</code>` +
      `<div class="ops">${ops}<span class="arrow">→</span><span class="result">${prettyEquation(s.target)} ` +
      `<span class="shape">${esc(fmtShape(s.result_shape))}</span></span></div>` +
      `${s.note ? `<div class="note">${esc(s.note)}</div>` : ''}</li>`;
  }

  _show(t) {
    this.trace = t;
    const layers = [...new Set([...t.forward, ...t.backward].map((s) => s.layer))]
      .filter((l) => l !== null && l !== undefined).sort((a, b) => a - b);
    this.shapes = {};
    for (const s of [...t.forward, ...t.backward]) {
      const key = `${baseName(s.target)}|${s.layer}`;
      if (!(key in this.shapes)) this.shapes[key] = s.result_shape;
    }
    this.root.innerHTML =
      `<p class="hint">Batch size B = ${esc(t.batch_size)}. Hover (or focus) a layer to see the shapes of a, z and δ; ` +
      `operands marked <span class="operand transposed">ᵀ</span> are transposed.</p>` +
      `<div class="trace-layers" role="group" aria-label="Layers">${layers.map((l) =>
        `<button type="button" class="chip" data-layer="${esc(l)}">Layer ${esc(l)}</button>`).join('')}</div>` +
      '<div class="trace-shapes" aria-live="polite">&nbsp;</div>' +
      `<div class="trace-cols"><div><h3>Forward</h3><ol class="steps">${t.forward.map((s) => this._step(s)).join('')}</ol></div>` +
      `<div><h3>Backward</h3><ol class="steps">${t.backward.map((s) => this._step(s)).join('')}</ol></div></div>` +
      (t.closed_form ? `<div class="closed-form"><h3>Closed form</h3><code>${prettyEquation(t.closed_form)}</code></div>` : '');
    for (const b of this.root.querySelectorAll('.chip')) {
      const l = Number(b.dataset.layer);
      b.addEventListener('mouseenter', () => this.highlight(l)); b.addEventListener('focus', () => this.highlight(l));
      b.addEventListener('mouseleave', () => this.highlight(null)); b.addEventListener('blur', () => this.highlight(null));
    }
    for (const li of this.root.querySelectorAll('.trace-step')) {
      const l = Number(li.dataset.layer);
      li.addEventListener('mouseenter', () => this.highlight(l));
      li.addEventListener('mouseleave', () => this.highlight(null));
    }
  }

  /** Highlight one layer's steps and show the shapes of a_i, z_i, delta_i (null clears). */
  highlight(layer) {
    if (!this.trace) return;
    for (const el of this.root.querySelectorAll('[data-layer]')) el.classList.toggle('hl', layer !== null && Number(el.dataset.layer) === layer);
    const box = this.root.querySelector('.trace-shapes');
    if (layer === null) { box.innerHTML = '&nbsp;'; return; }
    const get = (n) => this.shapes[`${n}|${layer}`];
    const z = get('z') || get('a'); const d = get('delta') || get('d') || get('a');
    box.innerHTML = `<b>Layer ${layer}</b>: a<sub>${layer}</sub> ${esc(fmtShape(get('a')))}, ` +
      `z<sub>${layer}</sub> ${esc(fmtShape(z))}, δ<sub>${layer}</sub> ${esc(fmtShape(d))}` +
      (get('dw') ? `, dW<sub>${layer}</sub> ${esc(fmtShape(get('dw')))}` : '');
  }
}

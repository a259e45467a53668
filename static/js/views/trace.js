// Backprop trace panel (GET /trace?convention=rows|columns): forward and backward equations with
// live shapes, every operand's shape as it is used (W₁ᵀ is (2×8) on 2-8-8-1), transposed operands
// highlighted, per-layer shapes of a, z, delta on hover, the closed-form gradient when the server
// has one, and the step "Check your gradients" diagnosed as wrong marked.
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
/** An operand's shape as it enters the product (the server's "shape"; "stored_shape" is the array's own). */
export const usedShape = (o) => o.shape;
const baseName = (t) => String(t || '').replace(/[_^]?\{?\d+\}?$/, '').replace(/^δ$/, 'delta').toLowerCase();

export class TraceView {
  constructor({ events }) {
    events.on('trace-batch', (id, batch) => this.load(id, batch));
    events.on('layer-hover', (layer) => this.highlight(layer));
    this.root = document.getElementById('trace'); this.trace = null; this.req = 0;
    this.convention = 'rows'; this.args = null; this.mark = null;
    for (const r of document.querySelectorAll('input[name=trace-convention]')) {
      r.addEventListener('change', () => { if (r.checked) this.setConvention(r.value); });
    }
  }

  async load(modelId, batchSize) {
    this.args = [modelId, batchSize];
    const req = ++this.req;
    try {
      const t = await api.trace(modelId, { convention: this.convention, batchSize });
      if (req === this.req) { this._show(t); this._applyMark(); }
    } catch (err) {
      if (req === this.req) this.root.innerHTML = `<p class="field-error">Trace unavailable: ${esc(err.message)}</p>`;
    }
  }

  /** Rows (the engine's batch) or columns (the question's: one sample as a column); `mark` a first_error. */
  async setConvention(convention, mark) {
    if (mark !== undefined) this.mark = mark;
    for (const r of document.querySelectorAll('input[name=trace-convention]')) r.checked = r.value === convention;
    if (convention === this.convention && this.trace) { this._applyMark(); return; }
    this.convention = convention;
    if (this.args) await this.load(...this.args);
  }

  /** Mark the step a diagnosis names ({layer, target}: delta[i], dW[2], ...); null clears. */
  markError(firstError) { this.mark = firstError || null; this._applyMark(); }

  _applyMark() {
    for (const el of this.root.querySelectorAll('.trace-step.wrong')) { el.classList.remove('wrong'); el.removeAttribute('aria-description'); }
    const fe = this.mark;
    if (!fe || fe.layer === null || fe.layer === undefined) return;
    const base = (/^[A-Za-z]+/.exec(fe.target || '') || ['delta'])[0].toLowerCase();
    const steps = [...this.root.querySelectorAll(`.trace-cols .trace-step[data-layer="${fe.layer}"]`)];
    const names = base === 'dw' ? ['dw'] : base === 'db' ? ['db'] : ['delta', 'k', 'dz'];
    let hits = steps.filter((el) => names.slice(0, 2).includes(baseName(el.dataset.target)));
    if (!hits.length) hits = steps.filter((el) => names.includes(baseName(el.dataset.target)));
    if (!hits.length) hits = steps.filter((el) => el.closest('.backward'));
    for (const el of hits) { el.classList.add('wrong'); el.setAttribute('aria-description', `diagnosed: ${fe.message || 'wrong step'}`); }
    if (hits[0]) hits[0].scrollIntoView({ block: 'nearest' });
  }

  _step(s) {
    const ops = (s.operands || []).map((o) => `<span class="operand${o.transposed ? ' transposed' : ''}"` +
      `${o.transposed ? ` title="transposed operand: stored ${esc(fmtShape(o.stored_shape || o.shape))}, used ${esc(fmtShape(usedShape(o)))}"` : ''}>` +
      `${prettyEquation(o.name)}${o.transposed ? '<sup>T</sup>' : ''}` +
      ` <span class="shape">${esc(fmtShape(usedShape(o)))}</span></span>`).join('<span class="op-sep">·</span>');
    return `<li class="trace-step" data-layer="${esc(s.layer)}" data-target="${esc(s.target)}">` +
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
      (t.convention === 'columns' ? '<p class="hint">Columns: one sample x = z<sub>0</sub> as a column, ' +
        'z<sub>i</sub> = f(W<sub>i</sub> z<sub>i-1</sub>), δ<sub>i</sub> (the question\'s k<sub>i</sub>) a column; ' +
        'the batch gradient is the mean over the samples.</p>' : '') +
      `<p class="hint">Batch size B = ${esc(t.batch_size)}. Hover (or focus) a layer to see the shapes of a, z and δ; ` +
      `operands marked <span class="operand transposed">ᵀ</span> are transposed.</p>` +
      `<div class="trace-layers" role="group" aria-label="Layers">${layers.map((l) =>
        `<button type="button" class="chip" data-layer="${esc(l)}">Layer ${esc(l)}</button>`).join('')}</div>` +
      '<div class="trace-shapes" aria-live="polite">&nbsp;</div>' +
      `<div class="trace-cols"><div><h3>Forward</h3><ol class="steps">${t.forward.map((s) => this._step(s)).join('')}</ol></div>` +
      `<div class="backward"><h3>Backward</h3><ol class="steps">${t.backward.map((s) => this._step(s)).join('')}</ol></div></div>` +
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

// Architecture builder: input features (2-D datasets), hidden layers (add/remove,
// units +/-, activation) and the output layer. Every change re-creates the model.
import { fillSelect } from '../catalog.js';

const $ = (id) => document.getElementById(id);
const MAX_UNITS = 32;

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v; else if (k === 'text') e.textContent = v; else e.setAttribute(k, v);
  }
  e.append(...children);
  return e;
}

export class BuilderView {
  constructor({ controller, events, catalog }) {
    this.controller = controller; this.catalog = catalog;
    this.root = $('builder');
    this.maxLayers = Math.min(10, (catalog.limits.max_layers || 9) - 1);
    const MAX_LAYERS = this.maxLayers;
    $('add-layer').addEventListener('click', () => controller.change((c) => {
      if (c.hidden.length >= MAX_LAYERS) return;
      const prev = c.hidden[c.hidden.length - 1];
      c.hidden.push({ units: prev ? prev.units : 4, activation: prev ? prev.activation : 'tanh' });
    }));
    $('remove-layer').addEventListener('click', () => controller.change((c) => { c.hidden.pop(); }));
    this.setConfig(controller.value);
    events.on('config', (cfg) => this.setConfig(cfg));
  }

  setConfig(cfg) {
    const focusId = document.activeElement && this.root.contains(document.activeElement) ? document.activeElement.id : null;
    this.root.replaceChildren(this._features(cfg), ...cfg.hidden.map((l, k) => this._layer(cfg, k, l, false)),
      this._layer(cfg, cfg.hidden.length, cfg.output, true));
    const n = cfg.hidden.length;
    $('layer-count').textContent = `${n} hidden layer${n === 1 ? '' : 's'}`;
    $('add-layer').disabled = n >= this.maxLayers;
    $('remove-layer').disabled = n === 0;
    if (focusId && $(focusId)) $(focusId).focus();
  }

  _features(cfg) {
    const box = el('fieldset', { class: 'layer-col features', id: 'features' }, el('legend', { text: cfg.custom ? 'Inputs' : 'Features' }));
    if (cfg.custom) {
      const cols = cfg.custom.input_columns;
      box.append(el('p', { class: 'hint', text: cols ? cols.join(', ') : 'your columns' }));
      return box;
    }
    if (!this.catalog.isTwoD(cfg.dataset)) {
      box.append(el('p', { class: 'hint', text: '1-D input x' }));
      return box;
    }
    for (const f of this.catalog.features) {
      const id = `feature-${f}`;
      const cb = el('input', { type: 'checkbox', id, value: f });
      cb.checked = cfg.features.includes(f);
      cb.addEventListener('change', () => this.controller.change((c) => {
        const set = new Set(c.features);
        if (cb.checked) set.add(f); else set.delete(f);
        c.features = this.catalog.features.filter((x) => set.has(x));
      }));
      box.append(el('div', { class: 'feature' }, cb, el('label', { for: id, text: this.catalog.feature(f).label })));
    }
    return box;
  }

  _layer(cfg, k, layer, isOutput) {
    const name = isOutput ? 'output layer' : `hidden layer ${k + 1}`;
    const get = (c) => (isOutput ? c.output : c.hidden[k]);
    const col = el('div', { class: `layer-col${isOutput ? ' output' : ''}`, role: 'group', 'aria-label': name });
    col.dataset.layer = String(k + 1);
    col.append(el('div', { class: 'col-title', text: isOutput ? 'Output' : `Layer ${k + 1}` }));
    const minus = el('button', { type: 'button', id: `units-minus-${k}`, class: 'round tiny', 'aria-label': `Remove a unit from ${name}`, text: '−' });
    const plus = el('button', { type: 'button', id: `units-plus-${k}`, class: 'round tiny', 'aria-label': `Add a unit to ${name}`, text: '+' });
    minus.disabled = layer.units <= 1; plus.disabled = layer.units >= MAX_UNITS;
    minus.addEventListener('click', () => this.controller.change((c) => { get(c).units = Math.max(1, get(c).units - 1); }));
    plus.addEventListener('click', () => this.controller.change((c) => { get(c).units = Math.min(MAX_UNITS, get(c).units + 1); }));
    const count = el('output', { id: `units-${k}`, class: 'units', 'aria-label': `units in ${name}`, 'aria-live': 'polite', text: String(layer.units) });
    col.append(el('div', { class: 'field units-row' }, minus, count, plus));
    col.append(el('div', { class: 'units-label', text: layer.units === 1 ? 'unit' : 'units' }));
    const sel = el('select', { id: `act-${k}`, 'aria-label': `Activation of ${name}` });
    const acts = this.catalog.activations.filter((a) => isOutput || !this.catalog.outputOnly.includes(a));
    fillSelect(sel, acts, layer.activation);
    sel.addEventListener('change', () => this.controller.change((c) => {
      get(c).activation = sel.value;
      if (isOutput && sel.value === 'softmax') { c.loss = 'cross_entropy'; if (c.output.units < 2) c.output.units = 2; }
      if (isOutput && sel.value === 'sigmoid' && c.loss === 'cross_entropy') c.loss = 'bce';
    }));
    col.append(el('div', { class: 'field' }, sel));
    return col;
  }
}

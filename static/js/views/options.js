// Model options that need a new model: loss, bias, init (+ std), seed, dtype.
import { fillSelect } from '../catalog.js';

const $ = (id) => document.getElementById(id);

function field(labelText, control) {
  const d = document.createElement('div'); d.className = 'field';
  const l = document.createElement('label'); l.htmlFor = control.id; l.textContent = labelText;
  d.append(l, control);
  return d;
}

function make(tag, id, attrs = {}) {
  const e = document.createElement(tag); e.id = id;
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  return e;
}

export class OptionsView {
  constructor({ controller, events, catalog }) {
        const root = $('options');
    const loss = make('select', 'loss'); fillSelect(loss, catalog.losses, controller.value.loss);
    const init = make('select', 'init'); fillSelect(init, catalog.inits, controller.value.init);
    const std = make('input', 'init-std', { type: 'number', step: 'any', min: '0', inputmode: 'decimal' });
    const seed = make('input', 'seed', { type: 'number', step: '1', inputmode: 'numeric' });
    const dtype = make('select', 'dtype'); fillSelect(dtype, catalog.dtypes, controller.value.dtype);
    const bias = make('input', 'bias', { type: 'checkbox' });
    const biasField = document.createElement('div'); biasField.className = 'field check';
    const bl = document.createElement('label'); bl.htmlFor = 'bias'; bl.textContent = 'Bias';
    biasField.append(bias, bl);
    root.append(field('Loss', loss), field('Init', init), field('Init std', std), field('Seed', seed),
      field('dtype', dtype), biasField);
    const change = (fn) => () => controller.change(fn);
    loss.addEventListener('change', change((c) => {
      c.loss = loss.value;
      if (c.loss === 'bce') c.output.activation = 'sigmoid';
      if (c.loss === 'cross_entropy') { c.output.activation = 'softmax'; c.output.units = Math.max(2, c.output.units); }
    }));
    init.addEventListener('change', change((c) => { c.init = init.value; }));
    std.addEventListener('change', () => { const v = Number(std.value); if (Number.isFinite(v)) controller.change((c) => { c.init_std = v; }); });
    seed.addEventListener('change', () => { const v = Math.trunc(Number(seed.value)); if (Number.isFinite(v)) controller.change((c) => { c.seed = v; }); });
    dtype.addEventListener('change', change((c) => { c.dtype = dtype.value; }));
    bias.addEventListener('change', change((c) => { c.bias = bias.checked; }));
    this.setConfig(controller.value);
    events.on('config', (cfg) => this.setConfig(cfg));
  }

  setConfig(cfg) {
    $('loss').value = cfg.loss; $('init').value = cfg.init; $('init-std').value = String(cfg.init_std);
    $('init-std').disabled = cfg.init !== 'normal';
    $('seed').value = String(cfg.seed); $('dtype').value = cfg.dtype; $('bias').checked = !!cfg.bias;
  }
}

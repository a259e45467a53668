// Data panel: dataset picker (select + thumbnails), test fraction, noise, samples,
// and "regenerate" (a new data seed, which re-creates the model).
import { fillSelect } from '../catalog.js';
import { adaptToDataset, defaultConfig } from '../state.js';
import { drawDatasetIcon } from './icons.js';

const $ = (id) => document.getElementById(id);
const LABELS = { multi_gauss: 'multi gauss', xor: 'XOR' };
const label = (n) => LABELS[n] || n;
const CUSTOM = '__custom';

export class DataView {
  constructor({ controller, events, catalog }) {
    this.controller = controller; this.catalog = catalog;
    const names = catalog.datasets.map((d) => d.name);
    const kindOf = Object.fromEntries(catalog.datasets.map((d) => [d.name, d.kind]));
    fillSelect($('dataset'), names, controller.value.dataset, (n) => `${label(n)} (${kindOf[n] || '?'})`);
    // shown while the model trains on uploaded data (picking a dataset goes back to generated data)
    this.customOption = document.createElement('option');
    this.customOption.value = CUSTOM; this.customOption.textContent = 'your data (uploaded)';
    this.customOption.disabled = true;
    $('dataset').appendChild(this.customOption);
    this.thumbs = names.map((n) => {
      const b = document.createElement('button');
      b.type = 'button'; b.className = 'thumb'; b.dataset.dataset = n;
      b.setAttribute('aria-label', `Dataset ${label(n)} (${kindOf[n]})`);
      b.title = `${label(n)} (${kindOf[n]})`;
      const cv = document.createElement('canvas'); cv.width = 52; cv.height = 52;
      cv.setAttribute('aria-hidden', 'true');
      drawDatasetIcon(cv, n, kindOf[n]);
      const cap = document.createElement('span'); cap.textContent = label(n);
      b.append(cv, cap);
      b.addEventListener('click', () => this._pick(n));
      $('dataset-thumbs').appendChild(b);
      return b;
    });
    $('dataset').addEventListener('change', (e) => this._pick(e.target.value));
    const slider = (id, key) => {
      const el = $(id);
      el.addEventListener('input', () => { $(`${id}-value`).textContent = this._fmt(id, Number(el.value)); });
      el.addEventListener('change', () => controller.change((c) => { c[key] = Number(el.value); }));
    };
    slider('test-fraction', 'test_fraction');
    slider('noise', 'noise');
    $('samples').addEventListener('change', (e) => {
      const v = Math.trunc(Number(e.target.value));
      if (Number.isFinite(v)) controller.change((c) => { c.samples = v; });
    });
    $('regenerate').addEventListener('click', () => controller.change((c) => {
      c.data_seed = Math.floor(Math.random() * 1e6);
    }));
    this.setConfig(controller.value);
    events.on('config', (cfg) => this.setConfig(cfg));
  }

  _fmt(id, v) { return id === 'test-fraction' ? `${Math.round(v * 100)}%` : String(v); }

  _pick(name) {
    const cfg = this.controller.value;
    if (name === CUSTOM || (name === cfg.dataset && !cfg.custom)) return;
    this.controller.change((c) => {
      if (c.custom) {
        const d = defaultConfig(this.catalog);
        c.custom = null; c.test_fraction = d.test_fraction; c.output = d.output; c.loss = d.loss;
      }
      c.dataset = name; adaptToDataset(c, this.catalog);
    });
  }

  setConfig(cfg) {
    const custom = !!cfg.custom;
    this.customOption.hidden = !custom;
    $('dataset').value = custom ? CUSTOM : cfg.dataset;
    $('noise').disabled = custom; $('samples').disabled = custom;
    $('test-fraction').disabled = !!(custom && cfg.custom.inline);
    for (const b of this.thumbs) {
      const on = !custom && b.dataset.dataset === cfg.dataset;
      b.classList.toggle('selected', on);
      b.setAttribute('aria-pressed', on ? 'true' : 'false');
    }
    for (const [id, v] of [['test-fraction', cfg.test_fraction], ['noise', cfg.noise]]) {
      $(id).value = String(v); $(`${id}-value`).textContent = this._fmt(id, v);
    }
    $('samples').value = String(cfg.samples);
  }
}

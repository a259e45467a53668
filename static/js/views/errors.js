// Maps API errors (FastAPI 422 `loc`) to the control they concern and shows the
// message next to it; anything unmapped goes to the banner.
import { formatDetail } from '../api.js';

const FIELD_IDS = {
  input_size: 'features', loss: 'loss', bias: 'bias', init: 'init', init_std: 'init-std',
  seed: 'seed', dtype: 'dtype', batch_size: 'batch-size', steps: 'step-epoch',
  'optimizer.name': 'optimizer', 'optimizer.learning_rate': 'learning-rate', 'optimizer.momentum': 'learning-rate',
  'optimizer.beta1': 'optimizer', 'optimizer.beta2': 'optimizer', 'optimizer.eps': 'optimizer', 'optimizer.nesterov': 'optimizer',
  optimizer: 'optimizer', regularization: 'reg-kind',
  'regularization.kind': 'reg-kind', 'regularization.rate': 'reg-rate',
  'data.dataset': 'dataset', 'data.samples': 'samples', 'data.noise': 'noise',
  'data.test_fraction': 'test-fraction', 'data.seed': 'regenerate', 'data.features': 'features', data: 'dataset',
  'data.dataset_id': 'csv-file', 'data.standardize': 'csv-standardize', nickname: 'nickname',
  layers: 'add-layer',
};

/** Control id for a FastAPI error location, e.g. ["body","layers",1,"units"] -> "units-1". */
export function locToControl(loc) {
  const path = (loc || []).filter((p) => p !== 'body' && p !== 'query');
  if (path[0] === 'layers' && Number.isInteger(path[1])) {
    return path[2] === 'activation' ? `act-${path[1]}` : `units-${path[1]}`;
  }
  for (let n = path.length; n > 0; n--) {
    const key = path.slice(0, n).filter((p) => typeof p === 'string').join('.');
    if (FIELD_IDS[key]) return FIELD_IDS[key];
  }
  return path.length === 1 && typeof path[0] === 'string' ? path[0] : null;
}

export class ErrorView {
  constructor(banner) { this.banner = banner; this.marked = []; }

  clear() {
    for (const el of this.marked) {
      el.removeAttribute('aria-invalid');
      el.removeAttribute('aria-errormessage');
      const msg = document.getElementById(`${el.id}-error`);
      // a message element of the page's own (e.g. the upload's) stays, empty and hidden
      if (msg && msg.dataset.marked) msg.remove();
      else if (msg) { msg.hidden = true; msg.textContent = ''; }
    }
    this.marked = [];
    this.banner.hidden = true; this.banner.textContent = '';
  }

  /** Show an error: field-level for 422 with loc, otherwise in the banner. */
  show(err, context = '') {
    const fields = err && Array.isArray(err.detail) ? err.detail : [];
    const unmapped = [];
    for (const d of fields) {
      const id = locToControl(d.loc);
      const el = id && document.getElementById(id);
      if (el) this._mark(el, d.msg); else unmapped.push(d);
    }
    if (!fields.length) this.message(`${context}${err && err.message ? err.message : String(err)}`);
    else if (unmapped.length) this.message(`${context}${formatDetail(unmapped)}`);
  }

  message(text) {
    this.banner.textContent = text;
    this.banner.hidden = false;
  }

  _mark(el, msg) {
    let span = document.getElementById(`${el.id}-error`);
    if (!span) {
      span = document.createElement('span');
      span.id = `${el.id}-error`; span.className = 'field-error'; span.setAttribute('role', 'alert');
      span.dataset.marked = '1';
      const host = el.closest('.field') || el.parentElement;
      host.appendChild(span);
    }
    span.textContent = msg; span.hidden = false;
    el.setAttribute('aria-invalid', 'true');
    el.setAttribute('aria-errormessage', span.id);
    this.marked.push(el);
  }
}

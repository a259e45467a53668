// "Your own data": pick a CSV file, choose input and target columns from its header and
// whether to standardize, POST /api/datasets, then re-create the model on {"dataset_id"}.
// The output layer and the loss follow the targets' kind in the server's answer.
// The server's 422 messages name the line of the file; they appear next to the control.
import { api, formatDetail } from '../api.js';
import { useUpload } from '../state.js';

const $ = (id) => document.getElementById(id);

/** Cells of one CSV line (RFC 4180 quotes; no embedded newlines needed for a header). */
export function splitCsvLine(line) {
  const out = []; let cur = ''; let q = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (q) {
      if (c === '"' && line[i + 1] === '"') { cur += '"'; i++; } else if (c === '"') q = false; else cur += c;
    } else if (c === '"') q = true;
    else if (c === ',') { out.push(cur.trim()); cur = ''; } else cur += c;
  }
  out.push(cur.trim());
  return out;
}

/** Header names of a CSV text. */
export function readHeader(text) {
  const lines = text.replace(/^\ufeff/, '').split(/\r?\n/);
  const first = lines.findIndex((l) => l.trim() !== '');
  return { header: first < 0 ? [] : splitCsvLine(lines[first]) };
}

export class UploadView {
  constructor({ controller, events }) {
    this.controller = controller; this.text = null; this.name = null;
    events.on('config', (cfg) => this.setConfig(cfg));
    $('csv-file').addEventListener('change', (e) => this._read(e.target.files[0]));
    $('csv-use').addEventListener('click', () => this.upload());
    $('csv-target').addEventListener('change', () => this._syncInputs());
  }

  async _read(file) {
    this._error(null);
    if (!file) return;
    this.text = await file.text(); this.name = file.name;
    const { header } = readHeader(this.text);
    if (header.length < 2) { this._error('The file needs a header row with at least two columns.'); $('csv-columns').hidden = true; return; }
    const target = $('csv-target');
    target.replaceChildren(...header.map((h) => { const o = document.createElement('option'); o.value = h; o.textContent = h; return o; }));
    target.value = header[header.length - 1];
    const box = $('csv-inputs');
    box.replaceChildren(...header.map((h, i) => {
      const id = `csv-input-${i}`;
      const row = document.createElement('div'); row.className = 'feature';
      const cb = document.createElement('input'); cb.type = 'checkbox'; cb.id = id; cb.value = h; cb.checked = true;
      const l = document.createElement('label'); l.htmlFor = id; l.textContent = h;
      row.append(cb, l);
      return row;
    }));
    this._syncInputs();
    $('csv-columns').hidden = false;
    $('csv-status').textContent = `${file.name}: choose the columns, then train.`;
  }

  /** The target column is never an input. */
  _syncInputs() {
    const t = $('csv-target').value;
    for (const cb of $('csv-inputs').querySelectorAll('input')) {
      const isTarget = cb.value === t;
      cb.disabled = isTarget;
      if (isTarget) cb.checked = false; else if (cb.dataset.wasTarget) cb.checked = true;
      cb.dataset.wasTarget = isTarget ? '1' : '';
    }
  }

  async upload() {
    this._error(null);
    if (!this.text) { this._error('Choose a CSV file first.'); return; }
    const inputs = [...$('csv-inputs').querySelectorAll('input:checked')].map((cb) => cb.value);
    const target = $('csv-target').value;
    if (!inputs.length) { this._error('Pick at least one input column.'); return; }
    const standardize = $('csv-standardize').checked;
    const button = $('csv-use');
    button.disabled = true;
    try {
      const ds = await api.uploadDataset({ csv: this.text, inputs, targets: [target], standardize });
      const name = this.name;
      $('csv-status').textContent = `${name}: ${ds.rows} rows, ${ds.input_columns.length} input${ds.input_columns.length === 1 ? '' : 's'}` +
        (ds.classes ? `, ${ds.classes.length} classes` : '');
      this.controller.change((c) => {
        if (!c.custom) c.test_fraction = 0.2;   // the generated datasets' 50% is a lot for real data
        useUpload(c, ds, { standardize, name });
      });
    } catch (err) {
      this._error(err.detail !== undefined ? formatDetail(Array.isArray(err.detail)
        ? err.detail.map((d) => ({ ...d, loc: [] })) : err.detail) : err.message);
    } finally {
      button.disabled = false;
    }
  }

  _error(text) {
    const el = $('csv-file-error');
    el.hidden = !text; el.textContent = text || '';
    if (text) $('csv-file').setAttribute('aria-invalid', 'true'); else $('csv-file').removeAttribute('aria-invalid');
  }

  setConfig(cfg) {
    const c = cfg.custom;
    $('csv-current').hidden = !c;
    if (c) {
      const cols = c.input_columns ? c.input_columns.join(', ') : 'uploaded columns';
      $('csv-current').textContent = c.inline ? 'Training on the imported model\'s data.'
        : `Training on ${c.name || 'your CSV'} (${cols}${c.target_columns ? ` → ${c.target_columns.join(', ')}` : ''}).`;
    }
  }
}

// Hidden test set: pasted or chosen CSV (last column is y; a header row is skipped) or
// JSON {"X", "y"} -> PUT /api/class/hidden-test {"X", "y"}. Problems name their line.
import { classApi } from './api.js';
import { formatDetail } from '../api.js';

const $ = (id) => document.getElementById(id);

const isNum = (s) => s.trim() !== '' && Number.isFinite(Number(s));

/** {X, y} from CSV or JSON text; throws Error with a message naming the line. */
export function parseHidden(text) {
  const t = text.replace(/^\ufeff/, '').trim();
  if (!t) throw new Error('paste CSV or JSON first');
  if (t[0] === '{') {
    let doc;
    try { doc = JSON.parse(t); } catch (e) { throw new Error(`not valid JSON: ${e.message}`); }
    if (!Array.isArray(doc.X) || !Array.isArray(doc.y)) throw new Error('the JSON needs "X" and "y" arrays');
    const X = doc.X.map((r) => (Array.isArray(r) ? r : [r]));
    const y = doc.y.map((r) => (Array.isArray(r) ? r : [r]));
    if (X.length !== y.length) throw new Error(`X has ${X.length} rows but y has ${y.length}`);
    return { X, y };
  }
  const X = []; const y = [];
  const lines = t.split(/\r?\n/);
  let width = null;
  lines.forEach((line, i) => {
    if (!line.trim()) return;
    const cells = line.split(/[,;\t]/).map((c) => c.trim().replace(/^"(.*)"$/, '$1'));
    if (!X.length && width === null && !cells.every(isNum)) { width = cells.length; return; }   // header
    const bad = cells.findIndex((c) => !isNum(c));
    if (bad >= 0) throw new Error(`line ${i + 1}: "${cells[bad]}" is not a number`);
    if (cells.length < 2) throw new Error(`line ${i + 1}: needs at least one input and y`);
    if (width !== null && cells.length !== width) throw new Error(`line ${i + 1}: has ${cells.length} cells but the first row has ${width}`);
    width = cells.length;
    const v = cells.map(Number);
    X.push(v.slice(0, -1)); y.push([v[v.length - 1]]);
  });
  if (!X.length) throw new Error('no data rows');
  return { X, y };
}

export class HiddenTest {
  constructor({ onUploaded }) {
    this.onUploaded = onUploaded;
    $('hidden-file').addEventListener('change', async (e) => {
      const f = e.target.files[0];
      if (f) $('hidden-text').value = await f.text();
    });
    $('hidden-upload').addEventListener('click', () => this.upload());
  }

  _error(text) {
    const e = $('hidden-text-error');
    e.hidden = !text; e.textContent = text || '';
    if (text) $('hidden-text').setAttribute('aria-invalid', 'true'); else $('hidden-text').removeAttribute('aria-invalid');
  }

  async upload() {
    this._error(null); $('hidden-status').textContent = '';
    let body;
    try { body = parseHidden($('hidden-text').value); } catch (err) { this._error(err.message); return; }
    try {
      const res = await classApi.hiddenTest(body);
      $('hidden-status').textContent = `Stored ${res.rows} rows (${body.X[0].length} inputs, ${body.y[0].length} target${body.y[0].length === 1 ? '' : 's'}).`;
      this.onUploaded?.();
    } catch (err) {
      this._error(`Upload refused: ${formatDetail(err.detail) || err.message}`);
    }
  }
}

// "Check your gradients": your own dW_i, db_i (pasted JSON or .npy/.npz files) through POST /check, or
// your backward pass as equations (columns or rows) through POST /derive, on the batch the panel shows
// (by default the one GET /gradients uses). Verdicts per layer; the diagnosis (first_error) marks the
// wrong step in the trace.
import { api, ApiError } from '../api.js';
import { formatNum } from '../charts/palette.js';
import { parseNpy, parseNpz } from './npy.js';

const $ = (id) => document.getElementById(id);
const esc = (s) => String(s ?? '').replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' }[c]));
const shape = (s) => (Array.isArray(s) ? `(${s.join('×')})` : '');
const GRAD = /^d([Wb])(\d+)$/;

/** Equations text, one "target = expression" per line (# comments), -> [{target, expr, line}]. */
export function parseEquations(text) {
  const out = [];
  text.split('\n').forEach((raw, n) => {
    const line = raw.split('#')[0].trim();
    if (!line) return;
    const at = line.indexOf('=');
    if (at < 1 || !line.slice(at + 1).trim()) throw new Error(`line ${n + 1}: expected "target = expression", e.g. dW[i] = delta[i] @ z[i-1].T`);
    out.push({ target: line.slice(0, at).trim(), expr: line.slice(at + 1).trim(), line: n + 1 });
  });
  if (!out.length) throw new Error('write at least one equation, e.g. delta[L] = 2 * (y_hat - y) * fprime(a[L])');
  return out;
}

/** The diagnosis as the page shows it: a heading naming the place once, then the message, each part said
 * once ("layer 1, " and the engine's inner "Diagnosis:" are already in the heading) and ending in a full stop. */
export function diagnosisParts(fe) {
  let msg = String(fe.message ?? '').trim();
  const layer = fe.layer ? `layer ${fe.layer}` : '';
  if (layer && msg.startsWith(`${layer}, `)) msg = msg.slice(layer.length + 2);
  const target = fe.target || '';
  const named = target && msg.startsWith(target);  // the message begins with the equation: the heading need not name it
  msg = msg.replace(/([.;:])\s*Diagnosis:\s*(\S)/g, (_, p, c) => `${p === ';' ? ';' : '.'} ${c.toUpperCase()}`);
  if (msg && !/[.!?]$/.test(msg)) msg += '.';
  const where = [layer, named ? '' : target].filter(Boolean).join(', ');
  return { heading: `Diagnosis${where ? ` (${where})` : ''}:`, message: msg };
}

/** A failed verdict whose values are right once aligned (transposed or reshaped): the shape is the mistake. */
function shapeOnly(v) {
  const re = v.relative_error;
  return !v.passed && re !== null && re !== undefined && re <= 1e-4 && v.shape && v.expected_shape &&
    shape(v.shape) !== shape(v.expected_shape);
}

const asText = (eqs) => eqs.map((e) => `${e.target} = ${e.expr}`).join('\n');

export class CheckerView {
  /** trace: the TraceView, where a diagnosis is marked. */
  constructor({ session, events, catalog, trace }) {
    Object.assign(this, { session, catalog, trace });
    events.on('model', (model, data) => this.setModel(model, data));
    this.model = null; this.data = null; this.defaultText = ''; this.uploaded = null;
    this.examples = null; this.req = 0;
    this.out = $('checker-result');
    for (const r of document.querySelectorAll('input[name=checker-mode]')) r.addEventListener('change', () => this.setMode(r.value));
    $('checker-run').addEventListener('click', () => this.run());
    for (const id of ['checker-json', 'checker-eqs', 'checker-code-text', 'checker-batch']) {
      $(id).addEventListener('keydown', (ev) => { if (ev.key === 'Enter' && (ev.ctrlKey || ev.metaKey)) { ev.preventDefault(); this.run(); } });
    }
    $('checker-files').addEventListener('change', () => this.readFiles());
    $('checker-copy-batch').addEventListener('click', () => this.copy($('checker-batch').value, 'Batch copied'));
    $('checker-copy-params').addEventListener('click', () => this.copyParameters());
    $('checker-default-batch').addEventListener('click', () => { $('checker-batch').value = this.defaultText; this.summarize(); });
    $('checker-batch').addEventListener('input', () => this.summarize());
    $('checker-example-question').addEventListener('click', () => this.example('question'));
    $('checker-example-correct').addEventListener('click', () => this.example('correct'));
    $('checker-code-question').addEventListener('click', () => this.codeExample('question'));
    $('checker-code-fixed').addEventListener('click', () => this.codeExample('fixed'));
    $('checker-code-text').addEventListener('input', () => { $('checker-code-lines').hidden = true; });
    $('checker-convention').addEventListener('change', () => this.trace.setConvention($('checker-convention').value));
  }

  mode() { return document.querySelector('input[name=checker-mode]:checked').value; }

  setMode(mode) {
    $('checker-arrays').hidden = mode !== 'arrays';
    $('checker-equations').hidden = mode !== 'equations';
    $('checker-code').hidden = mode !== 'code';
    $('checker-convention-field').hidden = mode === 'arrays';
    $('checker-run').textContent = { arrays: 'Check my gradients', equations: 'Check my equations', code: 'Check my code' }[mode];
  }

  // ---- app hooks ----
  setModel(model, data) {
    this.model = model; this.data = data; this.uploaded = null;
    const cap = Number(this.catalog.limits.gradients_default_rows) || 32;
    const train = data && data.train ? data.train : { X: [], y: [] };
    this.defaultText = JSON.stringify({ X: train.X.slice(0, cap), y: train.y.slice(0, cap) });
    $('checker-batch').value = this.defaultText;
    $('checker-files').value = '';
    this.summarize();
    this.clear();
  }

  clear() { this.out.replaceChildren(); this.trace.markError(null); }

  // ---- the batch ----
  summarize() {
    const text = $('checker-batch').value.trim();
    let rows = '?';
    try { rows = JSON.parse(text).X.length; } catch (e) { /* shown as ? until it parses */ }
    const n = `${rows} row${rows === 1 ? '' : 's'}`;
    $('checker-batch-summary').textContent = text === this.defaultText.trim()
      ? `${n}, the batch GET /gradients uses` : `your batch, ${n}`;
  }

  /** {} for the default batch (the server picks the same rows), else {X, y} from the box. */
  batch() {
    const text = $('checker-batch').value.trim();
    if (text === this.defaultText.trim()) return {};
    let b;
    try { b = JSON.parse(text); } catch (e) { throw new Error(`the batch is not valid JSON: ${e.message}`); }
    if (!b || !Array.isArray(b.X) || !Array.isArray(b.y)) throw new Error('the batch must be {"X": [[...], ...], "y": [[...], ...]}');
    return { X: b.X, y: b.y.map((r) => (Array.isArray(r) ? r : [r])) };
  }

  async copy(text, done) {
    try { await navigator.clipboard.writeText(text); } catch (e) {
      // no clipboard API (plain http on another host): copy through a hidden text box
      const box = document.createElement('textarea');
      box.value = text; box.setAttribute('aria-hidden', 'true'); box.style.position = 'fixed'; box.style.opacity = '0';
      document.body.appendChild(box); box.select(); document.execCommand('copy'); box.remove();
    }
    this.note(done);
  }

  async copyParameters() {
    if (!this.model) return;
    try {
      const p = await api.parameters(this.model.id);
      await this.copy(JSON.stringify(p), 'Parameters W, b copied ({"layers": [{"W", "b"}]}, W_i is (out, in))');
    } catch (err) { this.note(`Could not read the parameters: ${err.message}`, true); }
  }

  note(text, error = false) {
    const p = document.createElement('p'); p.className = error ? 'field-error' : 'hint'; p.textContent = text;
    this.out.replaceChildren(p);
  }

  // ---- uploads ----
  async readFiles() {
    const files = [...$('checker-files').files];
    if (!files.length) { this.uploaded = null; return; }
    try {
      const arrays = {};
      for (const f of files) {
        const buf = await f.arrayBuffer();
        if (/\.npz$/i.test(f.name)) Object.assign(arrays, await parseNpz(buf, f.name));
        else arrays[f.name.replace(/\.npy$/i, '')] = parseNpy(buf, f.name);
      }
      const layers = [];
      for (const [k, v] of Object.entries(arrays)) {
        const g = GRAD.exec(k);
        if (!g) continue;
        const i = Number(g[2]);
        if (i < 1) throw new Error(`${k}: layers are numbered from 1 (dW1 is the first layer's gradient)`);
        while (layers.length < i) layers.push({});
        layers[i - 1][`d${g[1]}`] = v.data;
      }
      if (!layers.length) throw new Error('no gradients found: name the arrays dW1, db1, dW2, … (files dW1.npy or members of one .npz)');
      if (('X' in arrays) !== ('y' in arrays)) throw new Error('give both X and y, or neither for the default batch');
      if (arrays.X) { $('checker-batch').value = JSON.stringify({ X: arrays.X.data, y: arrays.y.data }); this.summarize(); }
      this.uploaded = { layers };
      $('checker-json').value = JSON.stringify({ layers });
      this.note(`Read ${Object.keys(arrays).sort().join(', ')}; press Check.`);
    } catch (err) {
      this.uploaded = null; this.note(`Could not read the files: ${err.message}`, true);
    }
  }

  // ---- examples ----
  async example(which) {
    try {
      const id = this.session.id;
      await this.loadExamples(id);
      const conv = $('checker-convention').value;
      const set = this.examples[which]?.[conv] || this.examples[which]?.columns;
      if (which === 'question' && !this.examples.question[conv]) $('checker-convention').value = 'columns';
      const note = which === 'question'
        ? "# the question's recurrence: k_i = (k_{i+1}^T W_i) o f'(W_i z_{i-1}), dMSE/dW_i = k_i (x) z_{i-1}\n"
        : '# the backward pass that passes\n';
      $('checker-eqs').value = note + asText(set);
      $('checker-eqs').focus();
    } catch (err) { this.note(`Examples unavailable: ${err.message}`, true); }
  }

  async loadExamples(id) {
    if (!this.examples || this.examplesFor !== id) {
      this.examples = await api.deriveExamples(id);
      this.examplesFor = id;
    }
    return this.examples;
  }

  async codeExample(which) {
    try {
      const text = exampleCode(await this.loadExamples(this.session.id), which);
      if (!text) throw new Error('this server sends no example code');
      $('checker-convention').value = 'columns';  // the question's code takes one sample as a column
      $('checker-code-text').value = text;
      $('checker-code-lines').hidden = true;
      $('checker-code-text').focus();
    } catch (err) { this.note(`Examples unavailable: ${err.message}`, true); }
  }

  // ---- run ----
  async run() {
    const id = this.session.id;
    if (!id) return;
    const req = ++this.req; const mode = this.mode();
    $('checker-run').disabled = true; this.out.textContent = 'Checking…';
    let eqs = null;
    try {
      let r;
      if (mode === 'arrays') {
        let body;
        try { body = JSON.parse($('checker-json').value); } catch (e) {
          throw new Error(`paste JSON such as {"layers": [{"dW": [[…]], "db": […]}]} (${e.message})`);
        }
        if (!body || !Array.isArray(body.layers)) throw new Error('the JSON needs "layers": [{"dW": …, "db": …}, …], layer 1 first');
        r = await api.check(id, { ...this.batch(), layers: body.layers });
      } else if (mode === 'code') {
        const code = $('checker-code-text').value;
        const convention = $('checker-convention').value;
        r = await api.derive(id, { code, convention, ...this.batch() });
        r.convention = convention; this.lastCode = code;
      } else {
        eqs = parseEquations($('checker-eqs').value);
        const convention = $('checker-convention').value;
        r = await api.derive(id, { convention, ...this.batch(),
          equations: eqs.map(({ target, expr }) => ({ target, expr })) });
        r.convention = convention; this.lastEquations = eqs;
      }
      if (req !== this.req || id !== this.session.id) return;
      this.show(r, mode);
    } catch (err) {
      if (req !== this.req) return;
      this.trace.markError(null);
      this.note(err instanceof ApiError ? `Refused: ${this.explain(err, eqs)}` : err.message, true);
      if (mode === 'code') $('checker-code-lines').hidden = true;
    } finally {
      if (req === this.req) $('checker-run').disabled = false;
    }
  }

  /** A 422's items with equation indexes turned into the lines the student wrote. */
  explain(err, eqs) {
    if (!err.fieldErrors.length) return err.message;
    return err.fieldErrors.map((d) => {
      const loc = (d.loc || []).filter((p) => p !== 'body');
      if (eqs && loc[0] === 'equations' && Number.isInteger(loc[1]) && eqs[loc[1]]) {
        const e = eqs[loc[1]];
        return `line ${e.line} (${e.target} = ${e.expr}), ${loc[2] || 'equation'}: ${d.msg}`;
      }
      return loc.length ? `${loc.join('.')}: ${d.msg}` : d.msg;
    }).join('; ');
  }

  show(r, mode) {
    const verdict = (v) => {
      if (!v) return '<td>–</td>';
      const aligned = shapeOnly(v);  // never "✘" next to "rel. err 0": say what is wrong instead
      const how = /^transposed/.test(v.hint || '') ? 'transposed' : 'reshaped';
      const err = aligned || v.relative_error === null || v.relative_error === undefined ? ''
        : ` <span class="err">rel. err ${formatNum(v.relative_error, 2)}</span>`;
      const sh = v.shape && v.expected_shape && shape(v.shape) !== shape(v.expected_shape)
        ? ` <span class="shape">${esc(shape(v.shape))}, expected ${esc(shape(v.expected_shape))}</span>` : '';
      const word = v.passed ? '✔ right' : aligned ? `✘ wrong shape (values right once ${how})` : '✘ wrong';
      return `<td class="${v.passed ? 'pass' : 'fail'}">${word}${err}${sh}` +
        `${v.hint ? `<div class="hint-text">${esc(v.hint)}</div>` : ''}</td>`;
    };
    const steps = (l) => (l.steps || []).filter((s) => s.error).map((s) =>
      `<li class="step-error"><code>${esc(s.target)} = ${esc(s.expr)}</code>: ${esc(s.error)}</li>`).join('');
    const fe = r.first_error;
    const d = fe ? diagnosisParts(fe) : null;
    // equations no layer of this net evaluated: a pass must say it did not check them
    const unused = mode === 'equations' ? (r.unused || []) : [];
    const lines = this.lastEquations || [];
    const unusedNote = unused.length ? `<div class="unused-note" role="note"><b>Not used on this net` +
      `${r.passed ? ' (so not checked)' : ''}:</b><ul>${unused.map((u) => {
        const at = lines[u.index] ? `line ${lines[u.index].line}: ` : '';
        return `<li>${esc(at)}<code>${esc(u.target)} = ${esc(u.expr)}</code>: ${esc(u.reason)}.</li>`;
      }).join('')}</ul></div>` : '';
    const passText = unused.length
      ? `✔ passed: every gradient matches backprop, but ${unused.length} equation${unused.length === 1 ? ' was' : 's were'} not used`
      : '✔ passed: every gradient matches backprop';
    this.out.innerHTML =
      `<p class="verdict ${r.passed ? 'pass' : 'fail'}">${r.passed ? esc(passText) : '✘ failed'}</p>` + unusedNote +
      (d ? `<div class="diagnosis" role="alert"><b>${esc(d.heading)}</b> ${esc(d.message)}` +
        `${fe.line ? ` <span class="code-at">Line ${esc(fe.line)} of your code is the first wrong one.</span>` : ''}` +
        `${fe.layer ? ' <span class="hint">The step is marked in the trace.</span>' : ''}</div>` : '') +
      '<table class="gc checker-table"><thead><tr><th scope="col">Layer</th><th scope="col">dW</th><th scope="col">db</th></tr></thead>' +
      `<tbody>${r.layers.map((l) => `<tr data-layer="${esc(l.layer)}"><th scope="row">${esc(l.layer)}</th>${verdict(l.dW)}${verdict(l.db)}</tr>` +
        (steps(l) ? `<tr><td></td><td colspan="2"><ul class="steps-errors">${steps(l)}</ul></td></tr>` : '')).join('')}</tbody></table>`;
    this.out.dataset.passed = String(!!r.passed);
    if (mode === 'code') this.showCode(this.lastCode || '', fe);
    if (mode !== 'arrays' && r.convention) this.trace.setConvention(r.convention, fe);
    else this.trace.markError(fe || null);
  }

  /** The code as numbered lines, the first wrong one (first_error.line, 1-based) marked. */
  showCode(code, fe) {
    const list = $('checker-code-lines');
    const wrong = fe && Number.isInteger(fe.line) ? fe.line : null;
    list.replaceChildren(...code.split('\n').map((text, i) => {
      const li = document.createElement('li');
      const c = document.createElement('code'); c.textContent = text || ' ';
      li.appendChild(c);
      if (i + 1 === wrong) { li.className = 'wrong-line'; li.setAttribute('aria-current', 'true'); }
      return li;
    }));
    list.hidden = !code;
  }
}

/** The example backward() from GET /derive/examples: its one reading, so the field's name lives here only. */
function exampleCode(examples, which) {
  return examples?.code?.[which] || null;
}


// Gradient check: POST /gradcheck and show analytic-vs-numeric error per layer, the entries left out at a
// relu-type kink (both one-sided slopes are right there), why a step size eps is too small or too large, and
// which tensors pass because their error is within finite-difference round-off.
import { api } from '../api.js';
import { formatNum } from '../charts/palette.js';

const esc = (s) => String(s ?? '').replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' }[c]));

export class GradcheckView {
  constructor({ session, events }) {
    this.session = session;
    events.on('model', () => this.clear());
    this.btn = document.getElementById('gradcheck');
    this.out = document.getElementById('gradcheck-result');
    this.btn.addEventListener('click', () => this.run());
  }

  clear() { this.out.replaceChildren(); }

  async run() {
    const id = this.session.id;
    if (!id) return;
    this.btn.disabled = true; this.out.textContent = 'Checking…';
    try {
      const epsBox = document.getElementById('gradcheck-eps');
      const r = await api.gradcheck(id, epsBox ? { eps: Number(epsBox.value) } : {});
      if (id !== this.session.id) return;
      const row = (l) => {
        const rel = (p) => formatNum(p.relative_error, 3) + (p.within_roundoff ? ' (round-off)' : '');
        const cell = (p) => (p ? `<td>${rel(p)}</td><td>${formatNum(p.max_abs_error, 3)}</td>` : '<td>–</td><td>–</td>');
        return `<tr><th scope="row">${l.layer}</th>${cell(l.W)}${cell(l.b)}</tr>`;
      };
      // a tensor within round-off passes: its relative error is not shown as the verdict's figure
      const verdict = !r.passed ? '✘ failed' : (r.roundoff_note ? '✔ passed within round-off' : '✔ passed');
      this.out.innerHTML = `<p class="verdict ${r.passed ? 'pass' : 'fail'}">${verdict} ` +
        `— max relative error ${formatNum(r.max_relative_error, 3)}</p>` +
        (r.roundoff_note ? `<p class="hint roundoff-note">${esc(r.roundoff_note)}</p>` : '') +
        '<table class="gc"><thead><tr><th scope="col">Layer</th><th scope="col">W rel. err</th><th scope="col">W max abs</th>' +
        '<th scope="col">b rel. err</th><th scope="col">b max abs</th></tr></thead>' +
        `<tbody>${r.layers.map(row).join('')}</tbody></table>` +
        (r.kinks ? `<p class="hint kinks">${r.kinks} entr${r.kinks === 1 ? 'y sits' : 'ies sit'} at a kink of the activation ` +
          '(relu-type): there the central difference averages the two one-sided slopes and backprop takes one of ' +
          'them; both are right, so they are left out of the error.</p>' : '') +
        (r.eps_note ? `<p class="hint eps-note">${esc(r.eps_note)}</p>` : '');
      this.out.dataset.passed = String(!!r.passed);
    } catch (err) {
      this.out.innerHTML = '';
      const p = document.createElement('p'); p.className = 'field-error'; p.textContent = `Gradient check failed: ${err.message}`;
      this.out.appendChild(p);
    } finally {
      this.btn.disabled = false;
    }
  }
}

// Gradient check: POST /gradcheck and show analytic-vs-numeric error per layer.
import { api } from '../api.js';
import { formatNum } from '../charts/palette.js';

export class GradcheckView {
  constructor(app) {
    this.app = app;
    this.btn = document.getElementById('gradcheck');
    this.out = document.getElementById('gradcheck-result');
    this.btn.addEventListener('click', () => this.run());
  }

  clear() { this.out.replaceChildren(); }

  async run() {
    const id = this.app.session.id;
    if (!id) return;
    this.btn.disabled = true; this.out.textContent = 'Checking…';
    try {
      const r = await api.gradcheck(id, {});
      if (id !== this.app.session.id) return;
      const row = (l) => {
        const cell = (p) => (p ? `<td>${formatNum(p.relative_error, 3)}</td><td>${formatNum(p.max_abs_error, 3)}</td>` : '<td>–</td><td>–</td>');
        return `<tr><th scope="row">${l.layer}</th>${cell(l.W)}${cell(l.b)}</tr>`;
      };
      this.out.innerHTML = `<p class="verdict ${r.passed ? 'pass' : 'fail'}">${r.passed ? '✔ passed' : '✘ failed'} ` +
        `— max relative error ${formatNum(r.max_relative_error, 3)}</p>` +
        '<table class="gc"><thead><tr><th scope="col">Layer</th><th scope="col">W rel. err</th><th scope="col">W max abs</th>' +
        '<th scope="col">b rel. err</th><th scope="col">b max abs</th></tr></thead>' +
        `<tbody>${r.layers.map(row).join('')}</tbody></table>`;
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

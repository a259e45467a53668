// Table of every model in the class (GET /api/class/models): nickname, architecture,
// step, train / test loss, divergence.
import { num, row, who } from './format.js';

const $ = (id) => document.getElementById(id);

export function sortModels(list) {
  return [...list].sort((a, b) => {
    const an = (a.nickname || '').toLowerCase(); const bn = (b.nickname || '').toLowerCase();
    if (!an !== !bn) return an ? -1 : 1;
    return an.localeCompare(bn) || String(a.id).localeCompare(String(b.id));
  });
}

export class ModelsTable {
  show(list) {
    const body = $('models').tBodies[0];
    body.replaceChildren(...sortModels(list).map((m) => {
      const tr = row([
        { text: who(m), title: m.id }, { text: m.architecture, cls: 'arch' }, { text: String(m.step), cls: 'num' },
        { text: num(m.train_loss), cls: 'num' }, { text: num(m.test_loss), cls: 'num' },
        m.diverged ? { text: `yes, at step ${m.diverged_at ?? '?'}`, cls: 'bad' } : { text: 'no', cls: 'muted' },
      ]);
      tr.dataset.model = m.id;
      if (m.diverged) tr.classList.add('diverged');
      return tr;
    }));
    $('model-count').textContent = `(${list.length})`;
    $('models-empty').hidden = list.length > 0;
    $('models-updated').textContent = `updated ${new Date().toLocaleTimeString()}`;
  }
}

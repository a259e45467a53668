// Table of every model in the class (GET /api/class/models): a student's models together (one
// nickname, any case), then nickname, dataset, architecture, step, train / test loss, divergence.
import { num, row, who } from './format.js';

const $ = (id) => document.getElementById(id);

/** The student a model belongs to: its nickname (trimmed, any case), or the model itself. */
export const studentOf = (m) => {
  const name = (m.nickname || '').trim().replace(/\s+/g, ' ').toLowerCase();
  return name ? `name:${name}` : `id:${m.id}`;
};

export function sortModels(list) {
  return [...list].sort((a, b) => {
    const an = (a.nickname || '').trim().toLowerCase(); const bn = (b.nickname || '').trim().toLowerCase();
    if (!an !== !bn) return an ? -1 : 1;
    return an.localeCompare(bn) || String(a.id).localeCompare(String(b.id));
  });
}

export class ModelsTable {
  show(list) {
    const body = $('models').tBodies[0];
    const sorted = sortModels(list);
    const counts = {};
    for (const m of sorted) counts[studentOf(m)] = (counts[studentOf(m)] || 0) + 1;
    let prev = null;
    body.replaceChildren(...sorted.map((m) => {
      const student = studentOf(m);
      const first = student !== prev; prev = student;
      const name = first ? (counts[student] > 1 ? `${who(m)} (${counts[student]} models)` : who(m)) : '↳ same student';
      const tr = row([
        { text: name, title: m.id, cls: first ? '' : 'muted' }, { text: m.dataset || '' }, { text: m.architecture, cls: 'arch' },
        { text: String(m.step), cls: 'num' }, { text: num(m.train_loss), cls: 'num' }, { text: num(m.test_loss), cls: 'num' },
        m.diverged ? { text: `yes: stopped at ${m.step}, step ${m.diverged_at ?? m.step + 1} refused`, cls: 'bad' } : { text: 'no', cls: 'muted' },
      ]);
      tr.dataset.model = m.id;
      tr.dataset.student = student;
      tr.classList.add(first ? 'group-start' : 'group-more');
      if (m.diverged) tr.classList.add('diverged');
      return tr;
    }));
    $('model-count').textContent = `(${list.length})`;
    $('models-empty').hidden = list.length > 0;
    $('models-updated').textContent = `updated ${new Date().toLocaleTimeString()}`;
  }
}

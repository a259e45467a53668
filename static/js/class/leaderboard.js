// Leaderboard (GET /api/class/leaderboard): the assignment's students ranked on the hidden test
// set, one row each (their best model); models on another task listed apart with the reason.
import { num, row, who } from './format.js';

const $ = (id) => document.getElementById(id);
const pct = (v) => (v === null || v === undefined ? '–' : `${(100 * v).toFixed(1)}%`);

/** "circle · x1, x2 · loss bce · at most 500 steps" */
export function describeTask(t) {
  if (!t) return 'none: every model that fits the hidden test set is ranked';
  return [t.dataset, t.features ? t.features.join(', ') : null, t.loss ? `loss ${t.loss}` : 'any loss',
    t.step_budget ? `at most ${t.step_budget} steps` : 'no step budget'].filter(Boolean).join(' · ');
}

export class Leaderboard {
  constructor() { this.board = null; }

  /** The ranked rows (empty until a hidden test set exists). */
  get ranked() { return this.board && this.board.hidden_rows ? this.board.ranked : []; }

  show(board) {
    this.board = board;
    $('leaderboard').tBodies[0].replaceChildren(...board.ranked.map((r) => {
      const tr = row([
        { text: String(r.rank), cls: 'num' },
        { text: r.models > 1 ? `${who(r)} (best of ${r.models})` : who(r), title: r.id },
        { text: r.dataset }, { text: r.architecture, cls: 'arch' }, { text: String(r.step), cls: 'num' },
        { text: pct(r.hidden_accuracy), cls: 'num' }, { text: num(r.hidden_loss), cls: 'num' },
      ]);
      tr.dataset.model = r.id;
      return tr;
    }));
    $('assignment').textContent = describeTask(board.assignment);
    $('leaderboard-note').textContent = !board.hidden_rows ? 'Upload a hidden test set to rank the models.'
      : board.ranked.length ? `Scored on ${board.hidden_rows} hidden rows.`
        : 'No model is on the assignment and fits the hidden test set yet.';
    $('apart').hidden = !board.apart.length;
    $('apart-count').textContent = `(${board.apart.length})`;
    $('apart-table').tBodies[0].replaceChildren(...board.apart.map((r) => {
      const tr = row([{ text: who(r), title: r.id }, { text: r.dataset }, { text: String(r.step), cls: 'num' },
        { text: r.reason, cls: 'reason' }]);
      tr.dataset.model = r.id;
      return tr;
    }));
  }

  note(text) { $('leaderboard').tBodies[0].replaceChildren(); $('leaderboard-note').textContent = text; }
}

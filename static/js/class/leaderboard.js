// Leaderboard (GET /api/class/leaderboard): models ranked by their loss on the hidden test set.
import { num, row, who } from './format.js';

const $ = (id) => document.getElementById(id);

export class Leaderboard {
  show(list) {
    $('leaderboard').tBodies[0].replaceChildren(...list.map((r) => row([
      { text: String(r.rank), cls: 'num' }, { text: who(r), title: r.id }, { text: r.architecture, cls: 'arch' },
      { text: String(r.step), cls: 'num' }, { text: num(r.hidden_loss), cls: 'num' },
      { text: r.hidden_accuracy === null || r.hidden_accuracy === undefined ? '–' : `${(100 * r.hidden_accuracy).toFixed(1)}%`, cls: 'num' },
    ])));
    $('leaderboard-note').textContent = list.length ? ''
      : 'No model fits the hidden test set yet (its inputs and outputs must match the data).';
  }

  note(text) { $('leaderboard').tBodies[0].replaceChildren(); $('leaderboard-note').textContent = text; }
}

// Forks made in this browser: the other members of the current model's family (its
// original and its forks) are drawn on the loss chart as thin overlay curves (their
// evaluated train loss), and listed as chips that switch the page to that model.
import { api } from '../api.js';
import { forks } from '../tokens.js';

const $ = (id) => document.getElementById(id);
const COLORS = ['#1b7837', '#2166ac', '#c51b7d', '#8c510a', '#01665e', '#b2182b', '#4d4d4d'];
const OWN = '#542788';   // the loss chart's own train curve

export class ForksView {
  constructor({ session, controller, events }) {
    Object.assign(this, { session, controller, events });
    this.req = 0; this.curves = new Map();
    events.on('model', (model, data, why) => this.setModel(model, data, why));
  }

  /** Names in family order: the root is "original", the rest "fork 1", "fork 2", ... */
  static names(family) {
    return new Map(family.map((id, i) => [id, i === 0 ? 'original' : `fork ${i}`]));
  }

  async setModel(model, data, why) {
    const req = ++this.req;
    const family = forks.family(model.id);
    const box = $('forks');
    if (family.length < 2) { box.hidden = true; this.events.emit('overlays', []); return; }
    const names = ForksView.names(family);
    // a fork's own curve starts with its original's; refetch the others (they may have trained since)
    const others = family.filter((id) => id !== model.id);
    const got = await Promise.all(others.map((id) => api.history(id, 0, 400).then((h) => [id, h]).catch((err) => {
      if (err.status === 404) forks.remove(id);
      return [id, null];
    })));
    if (req !== this.req) return;
    const alive = new Set([model.id, ...got.filter(([, h]) => h).map(([id]) => id)]);
    const overlays = got.filter(([, h]) => h && h.eval).map(([id, h]) => ({
      label: `${names.get(id)} train`, stroke: COLORS[family.indexOf(id) % COLORS.length], width: 1.4, dash: [3, 3],
      x: h.eval.step, y: h.eval.train_loss,
    }));
    this.events.emit('overlays', overlays);
    box.hidden = false;
    const list = $('fork-list');
    list.replaceChildren(...family.filter((id) => alive.has(id)).map((id) => {
      const b = document.createElement('button');
      b.type = 'button'; b.className = 'chip'; b.dataset.model = id;
      const mark = document.createElement('span');
      mark.className = 'swatch'; mark.style.background = id === model.id ? OWN : COLORS[family.indexOf(id) % COLORS.length];
      mark.setAttribute('aria-hidden', 'true');
      b.append(mark, names.get(id));
      if (id === model.id) { b.setAttribute('aria-current', 'true'); b.title = 'the model on this page'; }
      else {
        b.title = `Open ${names.get(id)}`;
        b.addEventListener('click', () => this.controller.switchTo(async () => {
          try { await this.session.open(id, 'switch'); } catch (err) {
            if (err.status !== 404) throw err;
            forks.remove(id);   // gone from the server (evicted): not this page's model, so nothing is re-created
            throw new Error(`${names.get(id)} is no longer on the server`);
          }
        }, 'Open: '));
      }
      return b;
    }));
  }
}

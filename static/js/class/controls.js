// Freeze / unfreeze training for the whole class, and the assignment: a setup shared with every
// student page (a link to this site's playground, made page-relative), optionally with the loss
// required and a step budget.
import { classApi } from './api.js';
import { formatDetail } from '../api.js';
import { describeTask } from './leaderboard.js';

const $ = (id) => document.getElementById(id);

/**
 * "/?..." from a pasted share link of this site, without a model id. A link to another site is
 * refused (students only ever get links to this playground), never silently made local.
 */
export function presetLink(text, origin = location.origin) {
  const s = text.trim();
  if (!s) throw new Error('paste a share link from the playground');
  let url;
  try { url = new URL(s, origin); } catch (e) { throw new Error('this is not a link'); }
  if (!/^https?:$/.test(url.protocol)) throw new Error('this is not a playground link');
  if (url.origin !== origin) {
    throw new Error(`only this site's links are shared (${origin}); this link is on ${url.host}`);
  }
  url.searchParams.delete('model');
  const path = url.pathname.replace(/\/index\.html$/, '/').replace(/^\/+/, '/');
  if (!url.search) throw new Error('the link has no setup in it (copy it from "Share this setup")');
  return `${path}${url.search}`;
}

export class ClassControls {
  constructor({ onChange }) {
    this.onChange = onChange; this.status = null;
    $('freeze').addEventListener('click', () => this._freeze());
    $('preset-set').addEventListener('click', () => this._setPreset());
    $('preset-clear').addEventListener('click', () => this._run(() => classApi.clearPreset()));
    $('preset-url').addEventListener('input', () => this._error(null));
  }

  show(status) {
    this.status = status;
    const b = $('freeze');
    b.setAttribute('aria-pressed', status.frozen ? 'true' : 'false');
    b.textContent = status.frozen ? 'Unfreeze training' : 'Freeze training';
    b.classList.toggle('on', !!status.frozen);
    $('freeze-state').textContent = status.frozen ? 'Training is frozen for everyone.' : 'Students can train.';
    const cur = $('preset-current');
    if (status.preset) {
      const a = document.createElement('a'); a.href = status.preset; a.textContent = status.preset; a.target = '_blank'; a.rel = 'noopener';
      cur.replaceChildren(a);
    } else cur.textContent = 'none';
    $('assignment').textContent = describeTask(status.assignment);
    $('preset-clear').disabled = !status.preset;
  }

  _error(text) {
    const e = $('preset-url-error');
    e.hidden = !text; e.textContent = text || '';
    if (text) $('preset-url').setAttribute('aria-invalid', 'true'); else $('preset-url').removeAttribute('aria-invalid');
  }

  async _run(fn) {
    this._error(null);
    try { await fn(); } catch (err) { this._error(formatDetail(err.detail) || err.message); }
    this.onChange?.();
  }

  _freeze() { return this._run(() => classApi.freeze(!(this.status && this.status.frozen))); }

  _setPreset() {
    let link;
    try { link = presetLink($('preset-url').value); } catch (err) { this._error(err.message); return null; }
    const budget = $('preset-budget').value.trim();
    if (budget !== '' && !(Number.isInteger(Number(budget)) && Number(budget) >= 1)) {
      this._error('step budget: a whole number of steps, 1 or more (or empty for none)');
      return null;
    }
    const body = { link, match_loss: $('preset-loss').checked, step_budget: budget === '' ? null : Number(budget) };
    return this._run(async () => { await classApi.setPreset(body); $('preset-url').value = ''; });
  }
}

// Instructor page: sign in with the admin token, then refresh the models table every few
// seconds, the loss curves and the leaderboard a little less often, and the class status.
import { formatDetail } from '../api.js';
import { adminToken, classApi } from './api.js';
import { ModelsTable } from './models.js';
import { CurvesChart } from './curves.js';
import { HiddenTest } from './hidden.js';
import { Leaderboard } from './leaderboard.js';
import { ClassControls } from './controls.js';

const $ = (id) => document.getElementById(id);
const TICK_MS = window.__classPollMs || 3000;   // models + status; curves and leaderboard every other tick

class ClassPage {
  constructor() {
    this.models = new ModelsTable();
    this.curves = null;   // built once the panel is visible (uPlot needs a width)
    this.leaderboard = new Leaderboard();
    this.controls = new ClassControls({ onChange: () => this.refreshStatus() });
    this.hidden = new HiddenTest({ onUploaded: () => { this.hasHidden = true; this.refreshLeaderboard(); } });
    this.hasHidden = null;   // unknown until the first leaderboard answer (409: none uploaded yet)
    this.tick = 0; this.timer = null; this.authed = false;
    $('admin-token').value = adminToken.get();
    $('auth-form').addEventListener('submit', (e) => { e.preventDefault(); this.signIn($('admin-token').value.trim()); });
    $('sign-out').addEventListener('click', () => { adminToken.set(''); $('admin-token').value = ''; this.refresh(); });
    $('leaderboard-refresh').addEventListener('click', () => this.refreshLeaderboard());
    window.__class = this;
  }

  signIn(token) { adminToken.set(token); return this.refresh(); }

  /** Not signed in, wrong token, or the view is off: say so and hide the class. */
  _denied(err) {
    this.authed = false;
    document.body.dataset.auth = 'error';
    $('class-main').hidden = true;
    $('sign-out').hidden = !adminToken.get();
    const box = $('auth-error');
    const detail = formatDetail(err.detail) || err.message;
    box.textContent = err.noToken ? 'Not signed in: enter the instructor token above.' : err.status === 404 ? 'The instructor view is off on this server: start it with PLAYGROUND_ADMIN_TOKEN set.'
      : err.status === 403 ? `Wrong instructor token (${detail}).`
        : err.status === 401 ? `Not signed in: enter the instructor token above (${detail}).`
          : `Cannot load the class: ${detail}`;
    box.hidden = false;
  }

  async refresh() {
    let list;
    if (!adminToken.get()) {   // no token: say so without a refused call (the status is public)
      const s = await classApi.status().catch(() => ({ enabled: true }));
      this._denied(s.enabled ? { status: 401, noToken: true } : { status: 404 });
      if (s.enabled) this.refreshStatus();
      return;
    }
    try {
      list = await classApi.models();
    } catch (err) {
      if ([401, 403, 404].includes(err.status)) { this._denied(err); return; }
      $('auth-error').textContent = `Cannot load the class: ${err.message}`; $('auth-error').hidden = false;
      return;
    }
    const first = !this.authed;
    this.authed = true;
    document.body.dataset.auth = 'ok';
    $('auth-error').hidden = true;
    $('class-main').hidden = false;
    $('sign-out').hidden = false;
    if (!this.curves) this.curves = new CurvesChart();
    this.models.show(list);
    await Promise.all([this.refreshStatus(), first || this.tick % 2 === 0 ? this.refreshCurves() : null,
      (first || this.tick % 2 === 0) && this.hasHidden !== false ? this.refreshLeaderboard() : null]);
    document.body.dataset.loaded = String(Number(document.body.dataset.loaded || 0) + 1);
  }

  async refreshStatus() {
    try {
      const s = await classApi.status();
      this.controls.show(s);
      $('class-state').textContent = !s.enabled ? 'off' : s.frozen ? 'frozen' : 'training';
      $('class-state').classList.toggle('frozen', !!s.frozen);
    } catch (err) { /* next tick */ }
  }

  async refreshCurves() {
    try { this.curves.show(await classApi.curves(200)); } catch (err) { /* next tick */ }
  }

  async refreshLeaderboard() {
    try {
      this.leaderboard.show(await classApi.leaderboard());
      this.hasHidden = true;
    } catch (err) {
      if (err.status === 409) this.hasHidden = false;   // asked again after an upload or on Refresh
      this.leaderboard.note(err.status === 409 ? 'Upload a hidden test set to rank the models.' : `Leaderboard unavailable: ${formatDetail(err.detail) || err.message}`);
    }
  }

  start() {
    this.refresh();
    this.timer = setInterval(() => { this.tick += 1; if (this.authed) this.refresh(); }, TICK_MS);
  }
}

new ClassPage().start();

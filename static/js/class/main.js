// Instructor page: sign in with the admin token, then refresh the models table every few
// seconds, the loss curves and the leaderboard a little less often, and the class status.
// The Gallery view (the projector) refreshes every tile on every tick instead of the tables.
import { formatDetail } from '../api.js';
import { adminToken, classApi } from './api.js';
import { ModelsTable } from './models.js';
import { CurvesChart } from './curves.js';
import { HiddenTest } from './hidden.js';
import { Leaderboard } from './leaderboard.js';
import { ClassControls } from './controls.js';
import { Gallery } from './gallery.js';
import { expose, pollMs } from '../testhooks.js';

const $ = (id) => document.getElementById(id);
const TICK_MS = pollMs('__classPollMs', 3000);   // models + status; curves and leaderboard every other tick
const GALLERY_RESOLUTION = 32;

/** What the sign-in box says for a refused call: our sentence, plus the server's detail only when it adds something. */
export function deniedMessage(err) {
  if (err.noToken) return 'Not signed in: enter the instructor token above.';
  if (err.status === 404) return 'The instructor view is off on this server: start it with PLAYGROUND_ADMIN_TOKEN set.';
  if (err.status === 403) return 'Wrong instructor token: check it and sign in again.';
  if (err.status === 401) return 'Not signed in: enter the instructor token above.';
  return `Cannot load the class: ${formatDetail(err.detail) || err.message}`;
}

class ClassPage {
  constructor() {
    this.models = new ModelsTable();
    this.curves = null;   // built once the panel is visible (uPlot needs a width)
    this.leaderboard = new Leaderboard();
    this.gallery = new Gallery();
    this.view = 'tables';
    this.controls = new ClassControls({ onChange: () => this.refreshStatus() });
    this.hidden = new HiddenTest({ onUploaded: () => this.refreshLeaderboard() });
    this.tick = 0; this.timer = null; this.authed = false;
    $('admin-token').value = adminToken.get();
    $('auth-form').addEventListener('submit', (e) => { e.preventDefault(); this.signIn($('admin-token').value.trim()); });
    $('sign-out').addEventListener('click', () => { adminToken.set(''); $('admin-token').value = ''; this.refresh(); });
    $('leaderboard-refresh').addEventListener('click', () => this.refreshLeaderboard());
    $('view-tables').addEventListener('click', () => this.showView('tables'));
    $('view-gallery').addEventListener('click', () => this.showView('gallery'));
    expose('__class', this);
  }

  signIn(token) { adminToken.set(token); return this.refresh(); }

  showView(view) {
    this.view = view;
    $('view-tables').setAttribute('aria-pressed', String(view === 'tables'));
    $('view-gallery').setAttribute('aria-pressed', String(view === 'gallery'));
    this._layout();
    if (view === 'gallery') { this.refreshLeaderboard().then(() => this.refreshGallery()); return; }
    if (this.authed && !this.curves) { this.curves = new CurvesChart(); this.refreshCurves(); } else this.curves?.chart.render();
  }

  _layout() {
    $('class-main').hidden = !this.authed || this.view !== 'tables';
    $('gallery-panel').hidden = !this.authed || this.view !== 'gallery';
    $('view-switch').hidden = !this.authed;
  }

  /** Not signed in, wrong token, or the view is off: say so and hide the class. */
  _denied(err) {
    this.authed = false;
    document.body.dataset.auth = 'error';
    this._layout();
    $('sign-out').hidden = !adminToken.get();
    const box = $('auth-error');
    box.textContent = deniedMessage(err);
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
      $('auth-error').textContent = deniedMessage(err); $('auth-error').hidden = false;
      return;
    }
    const first = !this.authed;
    this.authed = true;
    document.body.dataset.auth = 'ok';
    $('auth-error').hidden = true;
    this._layout();
    $('sign-out').hidden = false;
    if (!this.curves && this.view === 'tables') this.curves = new CurvesChart();
    this.models.show(list);
    const slow = first || this.tick % 2 === 0;
    await Promise.all([this.refreshStatus(), slow && this.curves ? this.refreshCurves() : null,
      slow || this.view === 'gallery' ? this.refreshLeaderboard() : null,
      this.view === 'gallery' ? this.refreshGallery() : null]);
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
    } catch (err) {
      this.leaderboard.note(`Leaderboard unavailable: ${formatDetail(err.detail) || err.message}`);
    }
  }

  async refreshGallery() {
    try {
      this.gallery.show(await classApi.gallery(GALLERY_RESOLUTION), this.leaderboard.ranked);
      document.body.dataset.gallery = String(Number(document.body.dataset.gallery || 0) + 1);
    } catch (err) {
      $('gallery-note').textContent = `Gallery unavailable: ${formatDetail(err.detail) || err.message}`;
    }
  }

  start() {
    this.refresh();
    this.timer = setInterval(() => { this.tick += 1; if (this.authed) this.refresh(); }, TICK_MS);
  }
}

new ClassPage().start();

// Class demo, student side: polls GET /api/class/status (every 10 s, and at once when a
// call is refused with 423) for the instructor's freeze and shared setup, and the nickname
// shown to the instructor (sent when a model is created).
import { api } from '../api.js';
import { nickname } from '../tokens.js';

const $ = (id) => document.getElementById(id);
const DISMISSED = 'bp.preset-dismissed';

/** Only page-relative links ("/?..."), never another site ("//host", "/\host"). */
export function safeLink(link) {
  return typeof link === 'string' && /^\/(?![/\\])/.test(link) ? link : null;
}

export class ClassStatusView {
  constructor(app, { interval = (window.__testHooks && window.__playgroundPollMs) || 10_000 } = {}) {
    this.app = app; this.interval = interval; this.timer = null; this.status = null;
    $('preset-dismiss').addEventListener('click', () => this._dismiss());
    $('preset-link').addEventListener('click', () => this._dismiss());
    document.addEventListener('visibilitychange', () => { if (!document.hidden) this.poll(); });
    const input = $('nickname');
    input.value = nickname.get();
    input.addEventListener('change', () => {
      const v = input.value.trim().slice(0, 40);
      input.value = v;
      nickname.set(v);
      // an untrained network is simply made again, so the instructor sees the name at once
      const s = app.session;
      if (s.model && s.model.step === 0 && !s.busy) app.createModel();
      else $('nickname-hint').textContent = 'Used for the next network you make (Reset keeps this one).';
    });
  }

  /** First status before the first model is made (the nickname field may appear), then every interval. */
  async start() {
    await this.poll();
    this.timer = setInterval(() => this.poll(), this.interval);
  }

  async poll() {
    try {
      this.apply(await api.classStatus());
    } catch (err) {
      if (err.status === 404) this.apply({ enabled: false, frozen: false, preset: null });
      // a network hiccup: keep the last known status
    }
  }

  apply(status) {
    this.status = status;
    $('nickname-field').hidden = !status.enabled;
    this.app.setFrozen(!!status.frozen);
    const link = safeLink(status.preset);
    const banner = $('preset-banner');
    const dismissed = sessionStorage.getItem(DISMISSED);
    banner.hidden = !link || dismissed === link;
    if (link) $('preset-link').href = link;
  }

  _dismiss() {
    if (this.status && this.status.preset) sessionStorage.setItem(DISMISSED, this.status.preset);
    $('preset-banner').hidden = true;
  }
}

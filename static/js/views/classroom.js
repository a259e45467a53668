// Class demo, student side: polls GET /api/class/status (every 10 s, and at once when a
// call is refused with 423) for the instructor's freeze and shared setup, and the nickname
// shown to the instructor (sent when a model is created).
import { api } from '../api.js';
import { nickname } from '../tokens.js';
import { pollMs } from '../testhooks.js';

const $ = (id) => document.getElementById(id);
const DISMISSED = 'bp.preset-dismissed';

/** "circle · features x1, x2 · at most 500 steps": the task a student is ranked on. */
export function describeTask(t) {
  if (!t) return '';
  return [t.dataset, t.features ? `features ${t.features.join(', ')}` : null, t.loss ? `loss ${t.loss}` : null,
    t.step_budget ? `at most ${t.step_budget} steps` : null].filter(Boolean).join(' · ');
}

/** Only page-relative links ("/?..."), never another site ("//host", "/\host"). */
export function safeLink(link) {
  return typeof link === 'string' && /^\/(?![/\\])/.test(link) ? link : null;
}

export class ClassStatusView {
  constructor({ session, controller, events }, { interval = pollMs('__playgroundPollMs', 10_000) } = {}) {
    this.events = events; this.interval = interval; this.timer = null; this.status = null;
    events.on('class-poll', () => this.poll());
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
      if (session.model && session.model.step === 0 && !session.busy) controller.recreate();
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
      if (err.status === 404) this.apply({ enabled: false, frozen: false, preset: null, assignment: null });
      // a network hiccup: keep the last known status
    }
  }

  apply(status) {
    this.status = status;
    $('nickname-field').hidden = !status.enabled;
    this.events.emit('class-status', status);
    const link = safeLink(status.preset);
    const banner = $('preset-banner');
    const dismissed = sessionStorage.getItem(DISMISSED);
    banner.hidden = !link || dismissed === link;
    if (link) $('preset-link').href = link;
    const task = link ? describeTask(status.assignment) : '';
    $('preset-task').textContent = task ? `(${task})` : '';
  }

  _dismiss() {
    if (this.status && this.status.preset) sessionStorage.setItem(DISMISSED, this.status.preset);
    $('preset-banner').hidden = true;
  }
}

// Training controls: play/pause, step, step epoch, reset, and the hyper-parameters
// that change while training (PATCH, no reset): learning rate, batch size,
// optimizer, regularization kind/rate.
import { fillSelect } from '../catalog.js';

const $ = (id) => document.getElementById(id);

export class ControlsView {
  constructor({ session, controller, events, catalog, errors }) {
    this.controller = controller; this.errors = errors;
    fillSelect($('optimizer'), catalog.optimizers, controller.value.optimizer);
    fillSelect($('reg-kind'), catalog.regularization, controller.value.reg_kind);
    this.setConfig(controller.value);
    events.on('config', (cfg) => this.setConfig(cfg));
    events.on('playing', (on) => this.setPlaying(on));
    events.on('diverged', (on) => this.setDiverged(on));
    events.on('frozen', (on) => this.setFrozen(on));
    const s = () => session;
    $('play').addEventListener('click', () => s().toggle());
    $('step').addEventListener('click', () => s().step());
    $('step-epoch').addEventListener('click', () => controller.run(() => s().stepEpoch(), 'Step epoch: '));
    $('reset').addEventListener('click', () => controller.reset());
    $('learning-rate').addEventListener('change', (e) => {
      const v = this._number(e.target);
      if (v !== undefined) controller.patch(this._optimizer({ learning_rate: v }), (c) => { c.learning_rate = v; });
    });
    $('batch-size').addEventListener('change', (e) => {
      const raw = e.target.value.trim();
      const v = raw === '' ? null : this._number(e.target);
      if (v !== undefined) controller.patch({ batch_size: v === null ? null : Math.trunc(v) }, (c) => { c.batch_size = v === null ? null : Math.trunc(v); });
    });
    $('optimizer').addEventListener('change', (e) => {
      const name = e.target.value;
      controller.patch(this._optimizer({ name }), (c) => { c.optimizer = name; });
    });
    const reg = () => {
      const kind = $('reg-kind').value; const rate = this._number($('reg-rate'));
      if (rate !== undefined) controller.patch({ regularization: { kind, rate } }, (c) => { c.reg_kind = kind; c.reg_rate = rate; });
    };
    $('reg-kind').addEventListener('change', reg);
    $('reg-rate').addEventListener('change', reg);
    $('speed').addEventListener('change', (e) => s().setStepsPerFrame(e.target.value ? Number(e.target.value) : null));
    document.addEventListener('keydown', (e) => {
      const tag = e.target.tagName;
      if (e.key === ' ' && e.target === document.body && !['INPUT', 'SELECT', 'TEXTAREA'].includes(tag)) {
        e.preventDefault();
        if (!$('play').disabled) s().toggle();   // not while diverged or frozen
      }
    });
  }

  /**
   * PATCH body for an optimizer change. The server fills omitted optimizer fields from the
   * defaults (a lone learning_rate would switch the optimizer back to adam), so the name and
   * the learning rate are always sent together.
   */
  _optimizer(change) {
    const c = this.controller.value;
    return { optimizer: { name: c.optimizer, learning_rate: c.learning_rate, ...change } };
  }

  /** Parse a number input; shows a field error and returns undefined when invalid. */
  _number(input) {
    const v = Number(input.value.trim());
    if (input.value.trim() === '' || !Number.isFinite(v)) {
      this.errors.show({ detail: [{ loc: [input.id], msg: 'enter a number' }] });
      return undefined;
    }
    return v;
  }

  setConfig(cfg) {
    $('learning-rate').value = String(cfg.learning_rate);
    $('batch-size').value = cfg.batch_size === null ? '' : String(cfg.batch_size);
    $('optimizer').value = cfg.optimizer;
    $('reg-kind').value = cfg.reg_kind;
    $('reg-rate').value = String(cfg.reg_rate);
  }

  setPlaying(on) {
    const b = $('play');
    b.setAttribute('aria-pressed', on ? 'true' : 'false');
    b.setAttribute('aria-label', on ? 'Pause' : 'Play');
    b.classList.toggle('playing', on);
  }

  setDiverged(diverged) { this.diverged = !!diverged; this._locks(); }

  setFrozen(frozen) { this.frozen = !!frozen; this._locks(); }

  /** Training buttons are off after a divergence (until reset) and while the class is frozen. */
  _locks() {
    for (const id of ['play', 'step', 'step-epoch']) $(id).disabled = !!(this.diverged || this.frozen);
  }

  render(frame) {
    if (!frame) return;
    $('step-value').textContent = String(frame.step);
    $('epoch-value').textContent = String(frame.epoch);
  }
}

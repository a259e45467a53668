// App controller: holds the configuration, turns view edits into model re-creation
// (debounced) or PATCHes, keeps the URL / share link in sync, and shows errors.
import { clone, toSpec, shareURL, toQuery } from './state.js';
import { formatNum } from './charts/palette.js';

const $ = (id) => document.getElementById(id);

export class App {
  constructor({ cfg, catalog, session, errors }) {
    Object.assign(this, { cfg, catalog, session, errors });
    this.views = []; this.createTimer = null; this.renderer = null;
  }

  setViews(views) { this.views = views; }

  forEach(method, ...args) {
    for (const v of this.views) if (typeof v[method] === 'function') v[method](...args);
  }

  invalidate() { if (this.renderer) this.renderer.invalidate(); }

  /** Edit the configuration in a way that needs a new model. */
  changeModel(mutate) {
    const next = clone(this.cfg);
    mutate(next);
    if (JSON.stringify(next) === JSON.stringify(this.cfg)) return;
    this.cfg = next;
    this.forEach('setConfig', next);
    this.syncURL();
    clearTimeout(this.createTimer);
    document.body.dataset.ready = 'false';
    this.createTimer = setTimeout(() => this.createModel(), 150);
  }

  async createModel() {
    this.errors.clear();
    document.body.dataset.ready = 'false';
    try {
      const done = await this.session.create(toSpec(this.cfg));
      if (done) document.body.dataset.ready = 'true';
    } catch (err) {
      this.errors.show(err, 'Could not create the model: ');
      document.body.dataset.ready = 'error';
    }
  }

  /** Change hyper-parameters of the running model (no reset). */
  async patch(body, mutate) {
    this.errors.clear();
    try {
      await this.session.patch(body);
      mutate(this.cfg);
      if (this.session.model && this.session.model.diverged) {
        // the refused step left the parameters intact: new settings may train on from here
        this.session.model.diverged = false;
        this.showDivergence(null);
      }
      this.syncURL();
      if ('batch_size' in body && this.session.id) this.trace?.load(this.session.id, this.traceBatch());
    } catch (err) {
      this.fail(err);
    }
  }

  async run(fn, context = '') {
    try { return await fn(); } catch (err) { this.fail(err, context); return null; }
  }

  /** Show an error; a model the server no longer has (e.g. after a restart) is re-created. */
  fail(err, context = '') {
    const lost = err && (err.status === 404 || /model \S+ not found/.test(err.message || ''));
    if (lost && this.session.id) {
      this.createModel();   // clears the errors synchronously, so the note below stays
      this.errors.message('The server no longer has this model (was it restarted?); it has been re-created.');
      return;
    }
    this.errors.show(err, context);
  }

  reset() {
    this.errors.clear();
    return this.run(() => this.session.reset(), 'Reset: ');
  }

  /** B for the trace: the batch size, or the number of training rows for full batch. */
  traceBatch() { return this.cfg.batch_size || this.session.nTrain || undefined; }

  onLayerHover(layer) { this.trace?.highlight(layer); }

  syncURL() {
    const url = shareURL(this.cfg);
    history.replaceState(null, '', `?${toQuery(this.cfg)}`);
    $('share-link').href = url;
    $('share-url').value = url;
  }

  // ---- session hooks ----
  onModel(model, data, why) {
    this.showDivergence(null);
    this.forEach('setModel', model, data, why);
    this.trace?.load(model.id, this.traceBatch());
    this.invalidate();
  }

  onFrame(frame) {
    this.forEach('ingest', frame);
    if (frame.diverged) this.showDivergence(frame.diverged_at ?? frame.step);
  }

  showDivergence(step) {
    const box = $('divergence-message');
    const on = step !== null && step !== undefined;
    if (on) {
      const text = `Training diverged at step ${step}. The loss or the weights became non-finite or exploded — ` +
        'try a smaller learning rate, then press Reset.';
      if (box.textContent !== text) box.textContent = text;
    }
    box.hidden = !on;
    this.forEach('setDiverged', on);
  }

  state() {
    const s = this.session;
    return {
      config: clone(this.cfg), modelId: s.id, playing: s.playing, busy: s.busy,
      step: s.frame ? s.frame.step : 0, diverged: !!(s.model && s.model.diverged),
      trainLoss: s.frame ? formatNum(s.frame.train_loss, 6) : null,
    };
  }
}

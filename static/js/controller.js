// The model's life cycle, driven by the configuration: holds the configuration, turns edits into model
// re-creation (debounced) or PATCHes, and applies the error policy (a model the server lost is made
// again; a frozen class pauses). It tells the views through events (events.js): config, frozen,
// diverged (on, frame) and url (cfg, modelId), which views/share.js writes to the address bar.
// A change the server could not be reached for is kept (the fields show it) and sent once it answers.
import { api, unreachable } from './api.js';
import { backoffDelay } from './backoff.js';
import { clone, toSpec, fromSpec, readQuery, uploadToFit, useUpload } from './state.js';
import { tokens, nickname } from './tokens.js';

// PATCH tries on a 409 after a reconnect: the backoff's waits add up past PLAYGROUND_LEASE_TTL's default 10 s
const FLUSH_TRIES = 6;

export class ModelController {
  /** cfg: the starting configuration; session: Session; events: createEvents(); errors: ErrorView. */
  constructor({ cfg, catalog, session, events, errors }) {
    Object.assign(this, { cfg, catalog, session, events, errors });
    this.createTimer = null; this.frozen = false; this.inlineData = null;
    // the uploaded dataset whose description the output layer and loss are still to be fitted to (start())
    this.uploadToFit = null;
    // edits made while the server was unreachable: {create} a new model, or {body} the merged PATCH body
    this.pending = null;
    events.on('connection', (away) => { if (!away) this._flush(); });
    events.on('model', (m, d, why) => this._onModel(m, d, why));
    events.on('frame', (f) => { if (f.diverged) this._showDivergence(f); });
    events.on('error', (err, context) => this.fail(err, context));
    events.on('class-status', (status) => this.setFrozen(!!status.frozen));
  }

  /** The current configuration (a copy is made on every change, so this one is never edited). */
  get value() { return this.cfg; }

  /** Edit the configuration in a way that needs a new model. */
  change(mutate) {
    const next = clone(this.cfg);
    mutate(next);
    if (JSON.stringify(next) === JSON.stringify(this.cfg)) return;
    this.cfg = next;
    this.events.emit('config', next);
    this.syncURL();
    clearTimeout(this.createTimer);
    document.body.dataset.ready = 'false';
    this.createTimer = setTimeout(() => this.recreate(), 150);
  }

  /** Make the model again from the configuration (a new id). */
  async recreate() {
    this.errors.clear();
    document.body.dataset.ready = 'false';
    if (this.session.away) { this.pending = { create: true }; return; }   // made once the server answers
    try {
      const custom = this.cfg.custom && this.cfg.custom.inline;
      if (custom && !this.inlineData) throw new Error('the imported data is no longer available; pick a dataset');
      await this._fitUpload();
      const done = await this.session.create(toSpec(this.cfg, this.catalog, custom ? this.inlineData : null),
        { nickname: nickname.get() });
      if (done) document.body.dataset.ready = 'true';
    } catch (err) {
      if (unreachable(err)) { this.pending = { create: true }; this.fail(err); return; }
      this.errors.show(err, this.uploadToFit ? 'Could not open the uploaded dataset: ' : 'Could not create the model: ');
      document.body.dataset.ready = 'error';
    }
  }

  /**
   * First model of the page: the one named in the URL (a reload) or, for a plain URL, the last
   * one this browser had open, when this browser holds its token; else a new one from the URL.
   */
  async start(search) {
    const { model } = readQuery(search, this.catalog);
    const setup = [...new URLSearchParams(search).keys()].some((k) => k !== 'model');
    const id = model || (setup ? null : tokens.last());
    if (id && tokens.get(id)) {
      document.body.dataset.ready = 'false';
      try {
        if (await this.session.open(id, 'restore')) { document.body.dataset.ready = 'true'; return; }
      } catch (err) {
        if (err.status !== 404) console.warn('could not reopen model', id, err);
        if (err.status === 404) tokens.remove(id);
      }
    }
    this.uploadToFit = uploadToFit(search);
    await this.recreate();
  }

  /**
   * A link named an uploaded dataset without its output layer and loss: they are taken from the dataset's
   * description (GET /api/datasets/{id}), once; the configuration keeps the dataset when that fails.
   */
  async _fitUpload() {
    const did = this.uploadToFit;
    const c = this.cfg.custom;
    if (!did || !c || c.dataset_id !== did) { this.uploadToFit = null; return; }
    const ds = await api.dataset(did);
    this.uploadToFit = null;
    this.cfg = useUpload(clone(this.cfg), ds, { standardize: c.standardize });
    this.events.emit('config', this.cfg);
    this.syncURL();
  }

  /** Switch to a model created by an upload or a fork (already made; `fn` resolves when shown). */
  async switchTo(fn, context) {
    this.errors.clear();
    clearTimeout(this.createTimer);
    document.body.dataset.ready = 'false';
    try {
      await fn();
      document.body.dataset.ready = 'true';
      return true;
    } catch (err) {
      this.fail(err, context);
      document.body.dataset.ready = this.session.id ? 'true' : 'error';
      return false;
    }
  }

  /** Change hyper-parameters of the running model (no reset); `mutate` records them in the configuration. */
  async patch(body, mutate) {
    this.errors.clear();
    if (this.pending || this.session.away) { this._keep(body, mutate); return; }
    try {
      await this.session.patch(body);
      this._patched(body, mutate);
    } catch (err) {
      if (unreachable(err)) this._keep(body, mutate);
      this.fail(err);
    }
  }

  /** An edit the server could not be reached for: the configuration holds it, the model gets it on the reconnect. */
  _keep(body, mutate) {
    const next = clone(this.cfg);
    mutate(next);
    this.cfg = next;
    if (!this.pending || !this.pending.create) this.pending = { body: { ...(this.pending ? this.pending.body : {}), ...body } };
  }

  /**
   * The server answers again: send what was kept while it was away (a new model, or one PATCH). A 409 is
   * the lease of a process that died playing the model: tried again with backoff until it runs out.
   */
  async _flush(attempt = 0) {
    const p = this.pending;
    this.pending = null;
    if (!p) return;
    if (p.create || !this.session.model) { await this.recreate(); return; }
    this.errors.clear();
    const id = this.session.id;
    try {
      await this.session.patch(p.body);
      this._patched(p.body, () => {});
    } catch (err) {
      if (err.status === 409 && attempt < FLUSH_TRIES) {
        this._keep(p.body, () => {});
        setTimeout(() => { if (this.session.id === id) this._flush(attempt + 1); else this.pending = null; }, backoffDelay(attempt));
        return;
      }
      if (unreachable(err)) this._keep(p.body, () => {});
      else if (this.session.model && ![401, 403, 404].includes(err.status)) {
        // refused: the controls go back to what the model has (a lost model is made again from them)
        this.cfg = fromSpec(this.session.model.spec, this.cfg);
        this.events.emit('config', this.cfg);
        this.syncURL();
      }
      this.fail(err);
    }
  }

  /** The server took PATCH `body`: `mutate` records it in the configuration. */
  _patched(body, mutate) {
    const next = clone(this.cfg);
    mutate(next);
    this.cfg = next;
    if (this.session.model && this.session.model.diverged) {
      // the refused step left the parameters intact: new settings may train on from here
      this.session.model.diverged = false;
      this._showDivergence(null);
    }
    this.syncURL();
    if ('batch_size' in body && this.session.id) this.events.emit('trace-batch', this.session.id, this.traceBatch());
  }

  async run(fn, context = '') {
    try { return await fn(); } catch (err) { this.fail(err, context); return null; }
  }

  reset() { this.errors.clear(); return this.run(() => this.session.reset(), 'Reset: '); }

  /** Show an error; a model the server no longer has (e.g. after a restart) is re-created. */
  fail(err, context = '') {
    if (err && err.status === 423) { this.setFrozen(true, true); return; }
    if (unreachable(err)) { this.session.unreachable(); return; }   // the connection banner says it
    const lost = err && (err.status === 404 || /model \S+ not found/.test(err.message || ''));
    const refused = err && (err.status === 401 || err.status === 403);
    if ((lost || refused) && this.session.id) {
      if (refused) tokens.remove(this.session.id);
      this.recreate();   // clears the errors synchronously, so the note below stays
      this.errors.message(lost ? 'The server no longer has this model (was it restarted?); it has been re-created.'
        : 'This browser does not hold the token of that model, so it cannot change it; a new model has been created.');
      return;
    }
    this.errors.show(err, context);
  }

  /** The instructor froze (or unfroze) training; `refused` when a call of ours was just refused. */
  setFrozen(on, refused = false) {
    if (on && this.session.playing) this.session.pause();
    if (on === this.frozen && !refused) return;
    this.frozen = on;
    this.events.emit('frozen', on);
    if (refused) this.events.emit('class-poll');
  }

  /** B for the trace: the batch size, or the number of training rows for full batch. */
  traceBatch() { return this.cfg.batch_size || this.session.nTrain || undefined; }

  /** Tell the address bar and the share link (views/share.js) the configuration and the open model. */
  syncURL() { this.events.emit('url', this.cfg, this.session.id); }

  _onModel(model, data, why) {
    if (why !== 'create' && why !== 'reset') {
      // an existing model (reload, import, fork): the controls show its configuration
      this.cfg = fromSpec(model.spec, this.cfg);
      this.events.emit('config', this.cfg);
    }
    if (this.cfg.custom && this.cfg.custom.inline && data) {
      this.inlineData = { X: data.train.X, y: data.train.y, ...(data.test.X.length ? { X_test: data.test.X, y_test: data.test.y } : {}) };
      if (this.cfg.custom.standardize) this.inlineData.standardize = true;
    } else if (!this.cfg.custom || !this.cfg.custom.inline) this.inlineData = null;
    this.syncURL();
    this._showDivergence(null);
    this.events.emit('trace-batch', model.id, this.traceBatch());
    this.events.emit('redraw');
  }

  /** frame: the diverged frame, or null when training may go on. */
  _showDivergence(frame) { this.events.emit('diverged', !!frame, frame); }
}

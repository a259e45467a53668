// Session: owns the current model on the server, its WebSocket stream and the latest
// frame. Views are told about every frame (to accumulate series) through onFrame;
// drawing happens separately on requestAnimationFrame from session.frame. A stream whose server goes
// away (a restart, a dead replica) is opened again with backoff, and play resumes if it was on.
import { api, Stream, lostConnection } from './api.js';
import { backoffDelay } from './backoff.js';
import { tokens, forks } from './tokens.js';

export class Session {
  /** hooks: {onModel(model, data, why), onFrame(frame), onPlaying(bool), onError(err), onConnection(away)} */
  constructor(hooks) {
    this.hooks = hooks;
    this.model = null; this.data = null; this.frame = null;
    this.playing = false; this.stream = null; this.stepsPerFrame = null;
    this.dirty = false; this.gen = 0; this.playSentAt = 0; this.busy = false;
    this.budget = null;   // the class assignment's step budget while this model is on it (views/budget.js)
    this.away = null;     // while the stream's server is unreachable: {attempt, timer} of the next try
    this.reconnects = 0;  // streams opened again after their server went away
    this.rebase = false;  // the next stream frame is taken whatever its step (the server's saved step rules)
    this.resuming = null; // after a reconnect, until the first playing frame: {attempt} of the 409 retries
  }

  /** Steps the current model may still train under the budget (Infinity without one). */
  stepsLeft() { return this.budget === null || !this.model ? Infinity : Math.max(0, this.budget - this.model.step); }

  /** A budget set while the stream plays: play again so the budget's train calls take over. */
  setBudget(budget) {
    const was = this.budget; this.budget = budget;
    if (budget !== null && was === null && this.playing && this.stream) { this.pause(); this.play(); }
  }

  get id() { return this.model ? this.model.id : null; }

  get nTrain() { return this.data ? this.data.train.X.length : 0; }

  /** Whether this browser may change the current model (it holds the model's token). */
  get owned() { return !!(this.model && tokens.get(this.model.id)); }

  /** Create a new model for spec (replacing the current one). Throws ApiError on 422. */
  async create(spec, { nickname = '' } = {}) {
    return this._switch(async () => api.createModel(nickname ? { ...spec, nickname } : spec), 'create');
  }

  /** Open a model that already exists on the server (a reload, or switching between forks). */
  async open(id, why = 'restore') {
    return this._switch(() => api.getModel(id), why);
  }

  /** Switch to a model made elsewhere (import, fork): `model` is the 201 answer. */
  async adopt(model, why) {
    return this._switch(async () => model, why);
  }

  /**
   * Replace the current model by the one `get` resolves to. The old one is deleted unless it
   * belongs to a family of forks (its curve is still shown) or this browser has no token for it.
   */
  async _switch(get, why) {
    const gen = ++this.gen;
    const wasPlaying = this.playing && why === 'create';
    this._closeStream();
    this.busy = true;
    try {
      const model = await get();
      if (gen !== this.gen) {
        if (why === 'create') api.deleteModel(model.id).catch(() => {});
        return false;
      }
      const old = this.model;
      // a new model's frames must not inherit the old one's boundary or weights (see accept)
      this.model = model; this.frame = null;
      tokens.setLast(model.id);
      if (old && old.id !== model.id && this.disposable(old.id)) api.deleteModel(old.id).catch(() => {});
      this.history = null;
      const [data, history] = await Promise.all([
        api.data(model.id).catch(() => null),
        why !== 'create' && model.step > 0 ? api.history(model.id, 0, 800).catch(() => null) : null,
      ]);
      if (gen !== this.gen) return false;
      this.data = data;
      if (history) this.history = { ...history, modelId: model.id };
      this.hooks.onModel(model, this.data, why);
      await this.refresh();
      if (wasPlaying && gen === this.gen) this.play();
      return true;
    } finally {
      if (gen === this.gen) this.busy = false;
    }
  }

  /** A model replaced by another is deleted when nothing refers to it any more. */
  disposable(id) { return !!tokens.get(id) && !forks.has(id); }

  /** Fork the current model (its current state) and switch to the fork. */
  async fork() {
    if (!this.model) return null;
    if (this.playing) { const f = this._nextFrame(1500, (fr) => fr.playing === false); this.pause(); await f; }
    const parent = this.model;
    const child = await api.fork(parent.id);
    forks.add(parent.id, child.id, child.parent ? child.parent.step : parent.step);
    await this.adopt(child, 'fork');
    return child;
  }

  /** Resolves with the next stream frame that passes `test` (or null after `ms`). */
  _nextFrame(ms, test = () => true) {
    return new Promise((resolve) => {
      const t = setTimeout(() => { this.frameWaiter = null; resolve(null); }, ms);
      this.frameWaiter = (f) => { if (!test(f)) return; clearTimeout(t); this.frameWaiter = null; resolve(f); };
    });
  }

  /** Build a frame from REST calls (after create / reset / step epoch). */
  async refresh({ boundaryRes = 48, losses = [] } = {}) {
    const id = this.id; const gen = this.gen;
    const twoD = this.data && this.data.train.X.length && this.data.train.X[0].length === 2;
    const [model, params, grads, boundary] = await Promise.all([
      api.getModel(id), api.parameters(id), api.gradients(id).catch(() => null),
      twoD ? api.boundary(id, boundaryRes).catch(() => null) : Promise.resolve(null),
    ]);
    if (gen !== this.gen || id !== this.id) return;
    this.model = model;
    const layers = params.layers.map((l, i) => {
      const g = grads && grads.layers[i];
      return { W: l.W, b: l.b, dW: g ? g.dW : null, db: g ? g.db : null };
    });
    this.accept({
      type: 'frame', source: 'rest', step: model.step, epoch: model.epoch,
      train_loss: model.train_loss, test_loss: model.test_loss, losses,
      grad_norms: grads ? grads.layers.map((l) => l.grad_norm.W) : [],
      layers, boundary, diverged: model.diverged, diverged_at: model.diverged_at, playing: this.playing,
    });
  }

  accept(frame) {
    if (!this.model) return;
    // a late stream frame (e.g. the reply to a pause) must not roll the view back; after a reconnect the
    // server's step is the truth (steps a killed process had not saved are gone)
    if (frame.source !== 'rest' && this.frame && frame.step < this.frame.step && !this.rebase) return;
    if (frame.source !== 'rest') { this.rebase = false; if (frame.playing) this.resuming = null; }
    this.model.step = frame.step; this.model.epoch = frame.epoch;
    this.model.diverged = frame.diverged; this.model.diverged_at = frame.diverged_at;
    const prev = this.frame;
    if (!frame.boundary && prev && prev.boundary) frame.boundary = prev.boundary;
    if (!frame.layers && prev && prev.layers) { frame.layers = prev.layers; frame.layersStale = true; }
    this.frame = frame;
    this.hooks.onFrame(frame);
    if (frame.source !== 'rest' && this.frameWaiter) this.frameWaiter(frame);
    this.dirty = true;
    if (frame.source !== 'rest' && this.playing && this.stepsLeft() === 0) this.pause();   // the budget's frame
    if (frame.diverged) { if (this.playing) this.pause(); } else if (frame.playing === false && this.playing
      && frame.source !== 'rest' && performance.now() - this.playSentAt > 1500) this._setPlaying(false);
  }

  _ensureStream() {
    if (this.stream && this.stream.open) return this.stream;
    const gen = this.gen;
    const s = new Stream(this.id, {
      onOpen: () => { if (this.stream === s) this._reached(s); },
      onFrame: (f) => { if (gen === this.gen && this.stream === s) this.accept(f); },
      onError: (err) => {
        if (this.stream !== s) return;
        // a replica that died playing this model holds its lease a while: the new one says 409 until it frees
        if (err.status === 409 && this.resuming && this.playing) { this._playLater(s); return; }
        if (err.status === 423 || err.status === 401 || err.status === 403) this._setPlaying(false);
        this.hooks.onError(err);
      },
      onClose: (code) => {
        if (this.stream !== s) return;
        this.stream = null;
        if (lostConnection(code) && gen === this.gen && this.model) this._lost();
        else this._setPlaying(false);
      },
    });
    this.stream = s;
    return s;
  }

  /** The stream's server went away: try again after a backoff; `playing` stays as the student left it. */
  _lost() {
    const attempt = this.away ? this.away.attempt + 1 : 0;
    if (this.away) clearTimeout(this.away.timer); else this.hooks.onConnection(true);
    const gen = this.gen;
    const timer = setTimeout(() => { if (gen === this.gen && this.away && !this.stream) this._retry(); }, backoffDelay(attempt));
    this.away = { attempt, timer };
  }

  /**
   * A REST call did not reach the server (paused, or between two streams): the page is away as when its
   * stream drops, and probes with the same backoff until the server answers. A stream still open is opened
   * again, since only its opening tells that the server is back.
   */
  unreachable() {
    if (this.away) return;
    if (this.stream) { const s = this.stream; this.stream = null; s.close(); }
    this._lost();
  }

  _retry() {
    // without a model there is no stream to open: the health check is the probe
    if (!this.model) { api.health().then(() => this._reached(null), () => { if (this.away && !this.model) this._lost(); }); return; }
    const s = this._ensureStream();   // its auth message goes first, then the play queued behind it
    if (this.playing && this.budget === null) this._sendPlay(s);
  }

  /** The server answered (a stream `s` opened): after an absence the page is back, and plays on from its saved step. */
  _reached(s) {
    if (!this.away) return;
    clearTimeout(this.away.timer); this.away = null;
    this.reconnects += 1; this.rebase = true; this.resuming = this.playing && s ? { attempt: 0 } : null;
    this.hooks.onConnection(false);
    if (!s) return;
    if (!this.playing) this.refresh().catch(() => {});
    else if (this.budget === null && !s.sentPlay) this._sendPlay(s);
  }

  /** Play again on stream `s` after a backoff (a 409 while the lease of a dead process runs out). */
  _playLater(s) {
    const wait = backoffDelay(this.resuming.attempt++);
    setTimeout(() => { if (this.stream === s && this.playing && this.resuming) this._sendPlay(s); }, wait);
  }

  _stopReconnect() {
    if (this.away) { clearTimeout(this.away.timer); this.away = null; this.hooks.onConnection(false); }
    this.resuming = null;
  }

  _closeStream() {
    this._stopReconnect();
    if (this.stream) { const s = this.stream; this.stream = null; s.close(); }
    this._setPlaying(false);
  }

  _setPlaying(on) { if (on !== this.playing) { this.playing = on; this.hooks.onPlaying(on); } }

  play() {
    if (!this.model || this.model.diverged) return;
    if (this.budget !== null) { this._playWithinBudget(); return; }
    this._sendPlay(this._ensureStream());
    this._setPlaying(true);
  }

  _sendPlay(s) {
    const msg = { action: 'play' };
    if (this.stepsPerFrame) msg.steps_per_frame = this.stepsPerFrame;
    s.send(msg);
    s.sentPlay = true;
    this.playSentAt = performance.now();
  }

  /**
   * Play under a step budget: train calls that ask only for the steps left (a stream's play runs
   * until a pause arrives, thousands of steps past any budget at "auto" speed), a frame after each.
   * One loop at a time: a Play while the last call is still out just keeps that loop going.
   */
  _playWithinBudget() {
    if (this.stepsLeft() === 0) return;
    this._setPlaying(true);
    if (!this.budgetLoop) this.budgetLoop = this._budgetLoop().finally(() => { this.budgetLoop = null; });
  }

  async _budgetLoop() {
    const gen = this.gen;
    // a chosen speed is kept, but at most ~100 calls per budget (each call is followed by 4 GETs)
    const chunk = Math.max(this.stepsPerFrame || 10, Math.ceil(this.budget / (this.stepsPerFrame ? 100 : 25)));
    try {
      while (this.playing && gen === this.gen && this.budget !== null && this.stepsLeft() > 0 && !this.model.diverged) {
        await this._trainWithinBudget(chunk);
      }
    } catch (err) {
      if (gen === this.gen) this.hooks.onError(err);
    } finally {
      if (gen === this.gen) this._setPlaying(false);
    }
  }

  /**
   * At most `steps` steps, never past the budget, then a frame; one call at a time, so two calls
   * out together (Play, +1 epoch, Step) cannot each ask for the same steps left. Null: none left.
   */
  _trainWithinBudget(steps) {
    const gen = this.gen;   // a call queued for a model since replaced or reset is dropped
    const run = async () => {
      const n = Math.min(steps, this.stepsLeft());
      if (gen !== this.gen || !this.model || n <= 0) return null;
      const res = await api.train(this.id, n);
      await this.refresh({ losses: res.losses || [] });
      return res;
    };
    const turn = (this.budgetTurn || Promise.resolve()).then(run);
    this.budgetTurn = turn.catch(() => {});
    return turn;
  }

  pause() {
    if (this.stream) this.stream.send({ action: 'pause' });
    this._setPlaying(false);
    // big nets stream no weights: fetch them once training has stopped
    if (this.frame && this.frame.layersStale) {
      const gen = this.gen;
      setTimeout(() => { if (gen === this.gen && !this.playing) this.refresh().catch(() => {}); }, 300);
    }
  }

  toggle() { if (this.playing) this.pause(); else this.play(); }

  setStepsPerFrame(k) { this.stepsPerFrame = k; if (this.playing) this.play(); }

  step() {
    if (!this.model || this.model.diverged || this.stepsLeft() === 0) return;
    if (this.playing) this.pause();
    if (this.budget !== null) { this._trainWithinBudget(1).catch((err) => this.hooks.onError(err)); return; }
    this._ensureStream().send({ action: 'step' });
  }

  async stepEpoch() {
    if (!this.model || this.model.diverged) return null;
    if (this.playing) this.pause();
    const bs = this.model.spec.batch_size || this.nTrain || 1;
    const steps = Math.max(1, Math.ceil(this.nTrain / bs));
    if (this.budget !== null) return this._trainWithinBudget(steps);
    const res = await api.train(this.id, steps);
    await this.refresh({ losses: res.losses || [] });
    return res;
  }

  async reset(seed) {
    if (!this.model) return;
    this.gen++;
    this._closeStream();
    const model = await api.reset(this.id, seed === undefined ? {} : { seed });
    this.model = model; this.frame = null; this.history = null;
    this.hooks.onModel(model, this.data, 'reset');
    await this.refresh();
  }

  /** PATCH optimizer / regularization / batch_size without resetting. */
  async patch(body) {
    if (!this.model) return null;
    const model = await api.patchModel(this.id, body);
    if (model && model.id === this.id) this.model = { ...model, step: Math.max(model.step, this.model.step || 0) };
    return model;
  }
}

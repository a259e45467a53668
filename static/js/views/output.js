// Output panel: current train/test loss, the loss chart (train + test, log toggle),
// and the decision boundary (2-D) or prediction curve (1-D) with the data.
import { LineChart } from '../charts/linechart.js';
import { BoundaryPlot } from '../charts/boundary.js';
import { formatNum } from '../charts/palette.js';
import { api } from '../api.js';

const $ = (id) => document.getElementById(id);
const CURVE_POINTS = 120;
const BATCH_POINTS = 20;

export class OutputView {
  constructor({ session, events }) {
    this.session = session;
    const redraw = () => events.emit('redraw');
    events.on('model', (model, data) => this.setModel(model, data));
    events.on('frame', (frame) => this.ingest(frame));
    events.on('overlays', (list) => this.setOverlays(list));
    this.chart = new LineChart($('loss-chart'), {
      series: [{ label: 'train', stroke: '#542788', width: 2 }, { label: 'test', stroke: '#e08214', dash: [6, 3], width: 2 },
        { label: 'batch', stroke: 'rgba(84, 39, 136, 0.25)', width: 1 }],
      height: 150, yLabel: 'loss', maxPoints: 800,
    });
    $('loss-log').addEventListener('change', (e) => { this.chart.setLog(e.target.checked); redraw(); });
    this.boundary = new BoundaryPlot($('boundary'), { size: 300 });
    $('show-test').addEventListener('change', (e) => { this.boundary.showTest = e.target.checked; redraw(); });
    this.lastStep = -1; this.curveStep = -1; this.curveAt = 0; this.curveBusy = false;
    this.redraw = redraw;
  }

  setModel(model, data) {
    this.chart.clear();
    this.boundary.setData(data);
    this.lastStep = -1; this.curveStep = -1;
    const dims = data && data.train.X.length ? data.train.X[0].length : 2;
    $('boundary').hidden = dims > 2;
    $('boundary-none').hidden = dims <= 2;
    const h = this.session.history;
    if (h && h.modelId === model.id) this._prefill(h);
  }

  /** A model opened with a past (reload, import, fork): draw its recorded losses first. */
  _prefill(h) {
    const pts = [];
    const stride = Math.max(1, Math.ceil((h.step || []).length / 400));
    for (let i = 0; i < (h.step || []).length; i += stride) pts.push([h.step[i], 1, h.loss[i]]);
    const ev = h.eval || { step: [] };
    ev.step.forEach((s, i) => pts.push([s, 0, i]));
    pts.sort((a, b) => a[0] - b[0] || b[1] - a[1]);
    for (const [s, batch, v] of pts) {
      if (batch) this.chart.push(s, NaN, NaN, v);
      else this.chart.push(s, ev.train_loss[v], ev.test_loss[v], NaN);
    }
    if (pts.length) this.lastStep = pts[pts.length - 1][0];
  }

  /** Other models' curves on the loss chart (see ForksView). */
  setOverlays(list) { this.chart.setOverlays(list); this.redraw(); }

  ingest(frame) {
    if (frame.step < this.lastStep) this.chart.clear();
    if (frame.step === this.lastStep) return;
    // minibatch losses since the last frame (at most BATCH_POINTS of them per frame)
    const L = frame.losses || [];
    const steps = frame.loss_steps || L.map((_, i) => frame.step - L.length + 1 + i);
    const stride = Math.max(1, Math.ceil(L.length / BATCH_POINTS));
    for (let i = 0; i < L.length; i += stride) {
      if (steps[i] > this.lastStep && steps[i] <= frame.step) this.chart.push(steps[i], NaN, NaN, L[i]);
    }
    this.chart.push(frame.step, frame.train_loss, frame.test_loss, NaN);
    this.lastStep = frame.step;
  }

  render(frame) {
    if (frame) {
      $('loss-value').textContent = formatNum(frame.train_loss, 4);
      $('test-loss-value').textContent = formatNum(frame.test_loss, 4);
      if (frame.boundary) this.boundary.setBoundary(frame.boundary);
      if (this.boundary.oneD) this._maybePredict(frame);
    }
    this.chart.render();
    this.boundary.render();
  }

  /** 1-D datasets: refresh the prediction curve at most ~4 times a second. */
  _maybePredict(frame) {
    const { session } = this;
    if (this.curveBusy || frame.step === this.curveStep || performance.now() - this.curveAt < 250 || !session.id) return;
    const [lo, hi] = this.boundary.xRange;
    const xs = Array.from({ length: CURVE_POINTS }, (_, i) => lo + ((hi - lo) * i) / (CURVE_POINTS - 1));
    this.curveBusy = true; this.curveAt = performance.now(); this.curveStep = frame.step;
    const id = session.id;
    api.predict(id, xs.map((x) => [x])).then((res) => {
      if (id !== session.id) return;
      this.boundary.setCurve(xs, res.y_hat.map((r) => (Array.isArray(r) ? r[0] : r)));
      this.redraw();
    }).catch(() => {}).finally(() => { this.curveBusy = false; });
  }
}

// Network view: the diagram (edges by weight) with a thumbnail per neuron showing
// its activation over the input plane (2-D datasets), fed from the frame's boundary.
import { NetworkDiagram } from '../charts/network.js';

export class NetworkView {
  constructor({ controller, events, catalog }) {
    this.controller = controller; this.catalog = catalog;
    this.diagram = new NetworkDiagram(document.getElementById('network'), { onLayerHover: (i) => events.emit('layer-hover', i) });
    this.lastBoundary = null;
    events.on('model', (model, data) => this.setModel(model, data));
  }

  setModel(model, data) {
    const spec = model.spec;
    const dims = data && data.train.X.length ? data.train.X[0].length : 2;
    const twoD = dims === 2;
    const custom = spec.data && spec.data.source === 'custom';
    const features = (spec.data && spec.data.features) || (data && data.features) || (custom ? ['x1', 'x2'] : this.controller.value.features);
    this.features = custom ? Array.from({ length: dims }, (_, i) => `x${i + 1}`) : twoD ? features : ['x'];
    const info = custom && spec.data.info;
    const labels = info && info.input_columns && info.input_columns.length === dims ? info.input_columns : null;
    this.classification = data ? data.kind !== 'regression' : !this.catalog.isRegression(this.controller.value.dataset);
    this.diagram.setStructure({
      inputs: labels || this.features.map((f) => (this.catalog.feature(f) || { label: f }).label),
      layers: spec.layers, thumbs: twoD,
    });
    this.twoD = twoD; this.lastBoundary = null; this.inputKey = null;
    this.outUnits = spec.layers[spec.layers.length - 1].units;
    this.hiddenLayers = spec.layers.slice(0, -1);
  }

  _inputGrids(b) {
    const n = b.neuron_resolution || (b.neurons && b.neurons[0] && b.neurons[0][0] ? b.neurons[0][0].length : 16);
    const key = `${b.x_range}|${b.y_range}|${n}`;
    if (key === this.inputKey) return this.inputs;
    const [x0, x1] = b.x_range; const [y0, y1] = b.y_range;
    this.inputs = this.features.map((f) => {
      const fn = (this.catalog.feature(f) || {}).value || (() => 0);   // the catalog's feature table
      return Array.from({ length: n }, (_, j) => Array.from({ length: n }, (__, i) =>
        fn(x0 + ((x1 - x0) * i) / (n - 1), y0 + ((y1 - y0) * j) / (n - 1))));
    });
    this.inputKey = key;
    return this.inputs;
  }

  render(frame) {
    if (!frame) return;
    if (frame.layers) this.diagram.update(frame.layers);
    const b = frame.boundary;
    if (!this.twoD || !b || b === this.lastBoundary) return;
    this.lastBoundary = b;
    // no thumbnails (null) for nets over the server's FRAME_MAX_NEURONS: keep each hidden column's place
    const hidden = b.neurons || this.hiddenLayers.map(() => null);
    // two softmax outputs: unit 1 is P(class 0) = 1 - output, unit 2 is P(class 1) = output
    const out = this.outUnits === 2 ? [b.output.map((r) => r.map((v) => 1 - v)), b.output] : [b.output];
    const grids = [this._inputGrids(b), ...hidden, out];
    const scales = [];
    scales[grids.length - 1] = this.classification ? { offset: 0.5, max: 0.5 } : {};
    this.diagram.setThumbs(grids, scales);
  }
}

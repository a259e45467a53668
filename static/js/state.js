// Playground configuration <-> API spec <-> URL query string (so a shared link
// opens the same setup).
export const DEFAULTS = Object.freeze({
  dataset: 'circle', samples: 200, noise: 0, test_fraction: 0.5, data_seed: 0,
  features: ['x1', 'x2'],
  hidden: [{ units: 8, activation: 'tanh' }, { units: 8, activation: 'tanh' }],
  output: { units: 1, activation: 'sigmoid' },
  loss: 'bce', bias: true, init: 'xavier', init_std: 0.1, seed: 0, dtype: 'float64',
  optimizer: 'adam', learning_rate: 0.03, momentum: 0.9,
  reg_kind: 'none', reg_rate: 0, batch_size: 10,
  // uploaded data instead of a generated dataset: null, or {dataset_id, standardize, rows?,
  // input_columns?, target_columns?, classes?, name?}; {inline: true} for data that only the
  // current model holds (an imported model), which is sent back as X / y on re-creation
  custom: null,
});

/** Dataset metadata; main.js may refine these from GET /api/catalog. */
export const DATASETS = {
  regression: new Set(['plane', 'multi_gauss', 'sine']),
  oneD: new Set(['sine']),
};

export const isRegression = (name) => DATASETS.regression.has(name);
export const isTwoD = (name) => !DATASETS.oneD.has(name);

export function clone(cfg) { return JSON.parse(JSON.stringify(cfg)); }

export function defaultConfig() { return clone(DEFAULTS); }

/** Body of POST /api/models for a config (inline: the X / y of imported data, see App). */
export function toSpec(cfg, inline = null) {
  let data;
  if (cfg.custom && cfg.custom.dataset_id) {
    data = { dataset_id: cfg.custom.dataset_id, test_fraction: cfg.test_fraction, seed: cfg.data_seed };
    if (cfg.custom.standardize) data.standardize = true;
  } else if (cfg.custom && inline) {
    data = { ...inline };
  } else {
    data = {
      dataset: cfg.dataset, samples: cfg.samples, noise: cfg.noise,
      test_fraction: cfg.test_fraction, seed: cfg.data_seed,
    };
    if (isTwoD(cfg.dataset)) data.features = [...cfg.features];
  }
  return {
    layers: [...cfg.hidden, cfg.output].map((l) => ({ units: l.units, activation: l.activation })),
    loss: cfg.loss, bias: cfg.bias, init: cfg.init, init_std: cfg.init_std, seed: cfg.seed,
    dtype: cfg.dtype,
    optimizer: { name: cfg.optimizer, learning_rate: cfg.learning_rate, momentum: cfg.momentum },
    regularization: { kind: cfg.reg_kind, rate: cfg.reg_rate },
    batch_size: cfg.batch_size,
    data,
  };
}

const enc = (v) => encodeURIComponent(String(v)).replace(/%2C/g, ',');

/** Query string (without '?') describing the full configuration. */
export function toQuery(cfg) {
  const q = {
    dataset: cfg.dataset, n: cfg.samples, noise: cfg.noise, test: cfg.test_fraction, dseed: cfg.data_seed,
    f: cfg.features.join(','),
    h: cfg.hidden.map((l) => `${l.units}.${l.activation}`).join(','),
    out: `${cfg.output.units}.${cfg.output.activation}`,
    loss: cfg.loss, bias: cfg.bias ? 1 : 0, init: cfg.init, istd: cfg.init_std, seed: cfg.seed,
    dtype: cfg.dtype, opt: cfg.optimizer, lr: cfg.learning_rate, mom: cfg.momentum,
    bs: cfg.batch_size === null ? 'full' : cfg.batch_size, reg: cfg.reg_kind, rr: cfg.reg_rate,
  };
  if (cfg.custom && cfg.custom.dataset_id) { q.did = cfg.custom.dataset_id; if (cfg.custom.standardize) q.std = 1; }
  return Object.entries(q).map(([k, v]) => `${k}=${enc(v)}`).join('&');
}

function num(s, fallback, { int = false } = {}) {
  if (s === null || s === undefined || s === '') return fallback;
  const v = Number(s);
  if (!Number.isFinite(v)) return fallback;
  return int ? Math.trunc(v) : v;
}

function parseLayer(s, fallback) {
  const [u, act] = s.split('.');
  const units = num(u, NaN, { int: true });
  if (!Number.isFinite(units) || !act) return fallback;
  return { units, activation: act };
}

/** Configuration from a query string; unknown or missing keys keep their defaults. */
export function fromQuery(search) {
  const p = new URLSearchParams(search);
  const cfg = defaultConfig();
  const str = (k, key) => { if (p.has(k) && p.get(k) !== '') cfg[key] = p.get(k); };
  str('dataset', 'dataset'); str('loss', 'loss'); str('init', 'init'); str('dtype', 'dtype');
  str('opt', 'optimizer'); str('reg', 'reg_kind');
  cfg.samples = num(p.get('n'), cfg.samples, { int: true });
  cfg.noise = num(p.get('noise'), cfg.noise);
  cfg.test_fraction = num(p.get('test'), cfg.test_fraction);
  cfg.data_seed = num(p.get('dseed'), cfg.data_seed, { int: true });
  cfg.init_std = num(p.get('istd'), cfg.init_std);
  cfg.seed = num(p.get('seed'), cfg.seed, { int: true });
  cfg.learning_rate = num(p.get('lr'), cfg.learning_rate);
  cfg.momentum = num(p.get('mom'), cfg.momentum);
  cfg.reg_rate = num(p.get('rr'), cfg.reg_rate);
  if (p.has('bias')) cfg.bias = !['0', 'false', 'no'].includes(p.get('bias'));
  if (p.has('bs')) cfg.batch_size = p.get('bs') === 'full' ? null : num(p.get('bs'), cfg.batch_size, { int: true });
  if (p.has('f')) cfg.features = p.get('f').split(',').filter(Boolean);
  if (p.has('h')) cfg.hidden = p.get('h').split(',').filter(Boolean).map((s) => parseLayer(s, null)).filter(Boolean);
  if (p.has('out')) cfg.output = parseLayer(p.get('out'), cfg.output);
  if (!p.has('out') && !p.has('loss') && isRegression(cfg.dataset)) adaptToDataset(cfg);
  if (p.get('did')) cfg.custom = { dataset_id: p.get('did'), standardize: ['1', 'true'].includes(p.get('std')) };
  return cfg;
}

/** Configuration of an existing model (GET /models/{id} spec); `base` fills what a spec lacks. */
export function fromSpec(spec, base = defaultConfig()) {
  const cfg = clone(base);
  const layers = spec.layers || [];
  if (layers.length) {
    cfg.hidden = layers.slice(0, -1).map((l) => ({ units: l.units, activation: l.activation }));
    const out = layers[layers.length - 1]; cfg.output = { units: out.units, activation: out.activation };
  }
  for (const k of ['loss', 'bias', 'init', 'init_std', 'seed', 'dtype', 'batch_size']) if (k in spec) cfg[k] = spec[k];
  const o = spec.optimizer || {};
  if (o.name) cfg.optimizer = o.name;
  if (o.learning_rate !== undefined) cfg.learning_rate = o.learning_rate;
  if (o.momentum !== undefined) cfg.momentum = o.momentum;
  const r = spec.regularization || {};
  if (r.kind) cfg.reg_kind = r.kind;
  if (r.rate !== undefined) cfg.reg_rate = r.rate;
  const d = spec.data || {};
  if (d.source === 'custom' || d.dataset_id || !d.dataset) {
    const info = d.info || {};
    const id = info.dataset_id || d.dataset_id || null;
    cfg.custom = {
      ...(id ? { dataset_id: id } : { inline: true }),
      standardize: !!d.standardize,
      input_columns: info.input_columns || null, target_columns: info.target_columns || null,
      classes: info.classes || null,
    };
    if (d.n_train && d.n_test !== undefined) cfg.test_fraction = Math.round((d.n_test / (d.n_train + d.n_test)) * 20) / 20 || cfg.test_fraction;
  } else {
    cfg.custom = null;
    cfg.dataset = d.dataset;
    for (const [k, key] of [['samples', 'samples'], ['noise', 'noise'], ['test_fraction', 'test_fraction'], ['seed', 'data_seed']]) {
      if (d[k] !== undefined) cfg[key] = d[k];
    }
    if (Array.isArray(d.features)) cfg.features = [...d.features];
  }
  return cfg;
}

/** Output activation and loss that fit the dataset's kind. */
export function adaptToDataset(cfg) {
  if (isRegression(cfg.dataset)) {
    cfg.output = { units: 1, activation: 'identity' }; cfg.loss = 'mse';
  } else if (cfg.loss === 'mse' || cfg.output.activation === 'identity') {
    cfg.output = { units: 1, activation: 'sigmoid' }; cfg.loss = 'bce';
  }
  return cfg;
}

/** Absolute shareable URL for a configuration. */
export function shareURL(cfg) {
  return `${location.origin}${location.pathname}?${toQuery(cfg)}`;
}

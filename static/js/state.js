// Playground configuration <-> API spec <-> URL query string (so a shared link opens the same
// setup). One table, PARAMS, says how every field is written to and read from the URL.
// What a dataset is (regression, 1-D) and the defaults (the engine's default spec) come from the
// catalog (catalog.js), passed in: this module keeps no table of its own.
//
// A configuration: dataset, samples, noise, test_fraction, data_seed, features, hidden [{units,
// activation}], output {units, activation}, loss, bias, init, init_std, seed, dtype, optimizer,
// learning_rate, momentum, reg_kind, reg_rate, batch_size, and custom: uploaded data instead of a
// generated dataset: null, or {dataset_id, standardize, rows?, input_columns?, target_columns?,
// classes?, name?}; {inline: true} for data that only the current model holds (an imported model),
// which is sent back as X / y on re-creation.

export function clone(cfg) { return JSON.parse(JSON.stringify(cfg)); }

/** The configuration of the catalog's default spec (momentum: the momentum optimizer's default). */
export function defaultConfig(catalog) {
  return fromSpec(catalog.defaults, { momentum: catalog.optimizerParams('momentum').momentum ?? 0.9, custom: null });
}

function num(s, fallback, { int = false } = {}) {
  if (s === null || s === undefined || s === '') return fallback;
  const v = Number(s);
  if (!Number.isFinite(v)) return fallback;
  return int ? Math.trunc(v) : v;
}

function parseLayer(s) {
  const [u, act] = s.split('.');
  const units = num(u, NaN, { int: true });
  return Number.isFinite(units) && act ? { units, activation: act } : null;
}

const layer = (l) => `${l.units}.${l.activation}`;
const str = { write: (v) => v, read: (s, cur) => (s === '' ? cur : s) };
const float = { write: (v) => v, read: (s, cur) => num(s, cur) };
const int = { write: (v) => v, read: (s, cur) => num(s, cur, { int: true }) };

const yes = (s) => ['1', 'true'].includes(s);

/**
 * The URL state, both ways: [query key, field, {write(value) -> string | null, read(text, current) -> value}].
 * Fields are the configuration's, and `model` (the open model: a reload reopens it; a share link leaves it
 * out, as a model can only be changed with its token). A key missing from the URL keeps the field's default;
 * a write of null leaves the key out.
 */
export const PARAMS = [
  ['dataset', 'dataset', str], ['n', 'samples', int], ['noise', 'noise', float], ['test', 'test_fraction', float],
  ['dseed', 'data_seed', int],
  ['f', 'features', { write: (v) => v.join(','), read: (s) => s.split(',').filter(Boolean) }],
  ['h', 'hidden', { write: (v) => v.map(layer).join(','), read: (s) => s.split(',').filter(Boolean).map(parseLayer).filter(Boolean) }],
  ['out', 'output', { write: layer, read: (s, cur) => parseLayer(s) || cur }],
  ['loss', 'loss', str], ['bias', 'bias', { write: (v) => (v ? 1 : 0), read: (s) => !['0', 'false', 'no'].includes(s) }],
  ['init', 'init', str], ['istd', 'init_std', float], ['seed', 'seed', int], ['dtype', 'dtype', str],
  ['opt', 'optimizer', str], ['lr', 'learning_rate', float], ['mom', 'momentum', float],
  ['bs', 'batch_size', { write: (v) => (v === null ? 'full' : v), read: (s, cur) => (s === 'full' ? null : num(s, cur, { int: true })) }],
  ['reg', 'reg_kind', str], ['rr', 'reg_rate', float],
  // an uploaded dataset (GET /api/datasets): its id, and whether its columns are standardized
  ['did', 'custom', { write: (v) => (v && v.dataset_id) || null, read: (s) => (s ? { dataset_id: s, standardize: false } : null) }],
  ['std', 'custom', { write: (v) => (v && v.dataset_id && v.standardize ? 1 : null),
    read: (s, cur) => (cur && cur.dataset_id ? { ...cur, standardize: yes(s) } : cur) }],
  ['model', 'model', { write: (v) => v || null, read: (s) => s || null }],
];

const enc = (v) => encodeURIComponent(String(v)).replace(/%2C/g, ',');

/** Query string (without '?') describing the full configuration, and the open model's id when given. */
export function toQuery(cfg, model = null) {
  const state = { ...cfg, model };
  return PARAMS.map(([key, field, t]) => [key, t.write(state[field])])
    .filter(([, v]) => v !== null).map(([key, v]) => `${key}=${enc(v)}`).join('&');
}

/** {config, model} from a query string; unknown or missing keys keep their defaults (model: null). */
export function readQuery(search, catalog) {
  const p = new URLSearchParams(search);
  const state = { ...defaultConfig(catalog), model: null };
  for (const [key, field, t] of PARAMS) if (p.has(key)) state[field] = t.read(p.get(key), state[field]);
  const { model, ...cfg } = state;
  if (!p.has('out') && !p.has('loss') && catalog.isRegression(cfg.dataset)) adaptToDataset(cfg, catalog);
  return { config: cfg, model };
}

/**
 * The uploaded dataset's id when a link names one without `out` and `loss` (its output layer and loss are
 * then fitted to the dataset's description, see useUpload), else null.
 */
export function uploadToFit(search) {
  const p = new URLSearchParams(search);
  return p.get('did') && !p.has('out') && !p.has('loss') ? p.get('did') : null;
}

/** Output layer and loss for an upload's targets (`target_kind` of POST /api/datasets or GET /api/datasets/{id}). */
export function outputForTargets(ds) {
  if (ds.target_kind === 'classes') {
    return { output: { units: Math.max(2, ds.classes.length), activation: 'softmax' }, loss: 'cross_entropy' };
  }
  if (ds.target_kind === 'binary') return { output: { units: 1, activation: 'sigmoid' }, loss: 'bce' };
  return { output: { units: ds.target_columns.length, activation: 'identity' }, loss: 'mse' };
}

/** Train on an upload (its description `ds`): its columns, and the output layer and loss its targets take. */
export function useUpload(cfg, ds, { standardize = false, name = null } = {}) {
  cfg.custom = {
    dataset_id: ds.id, standardize, ...(name ? { name } : {}), rows: ds.rows, input_columns: ds.input_columns,
    target_columns: ds.target_columns, classes: ds.classes || null,
  };
  Object.assign(cfg, outputForTargets(ds));
  return cfg;
}

/** Configuration from a query string (readQuery's config). */
export function fromQuery(search, catalog) { return readQuery(search, catalog).config; }

/** Body of POST /api/models for a config (inline: the X / y of imported data, see controller.js). */
export function toSpec(cfg, catalog, inline = null) {
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
    if (catalog.isTwoD(cfg.dataset)) data.features = [...cfg.features];
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

/** Configuration of an existing model (GET /models/{id} spec); `base` fills what a spec lacks. */
export function fromSpec(spec, base) {
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
export function adaptToDataset(cfg, catalog) {
  if (catalog.isRegression(cfg.dataset)) {
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

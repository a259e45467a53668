// Normalizes GET /api/catalog into the option lists the forms are built from, with
// the documented values (docs/api.md) as fallbacks.
import { DATASETS } from './state.js';

export const FALLBACK = {
  activations: ['identity', 'sigmoid', 'tanh', 'relu', 'leaky_relu', 'elu', 'softplus', 'silu', 'softmax'],
  losses: ['mse', 'bce', 'cross_entropy'],
  optimizers: ['sgd', 'momentum', 'adam'],
  inits: ['xavier', 'he', 'normal'],
  regularization: ['none', 'l1', 'l2'],
  dtypes: ['float64', 'float32'],
  features: ['x1', 'x2', 'x1sq', 'x2sq', 'x1x2', 'sinx1', 'sinx2'],
  datasets: [
    { name: 'circle', kind: 'classification', dim: 2 }, { name: 'xor', kind: 'classification', dim: 2 },
    { name: 'gauss', kind: 'classification', dim: 2 }, { name: 'spiral', kind: 'classification', dim: 2 },
    { name: 'moons', kind: 'classification', dim: 2 }, { name: 'plane', kind: 'regression', dim: 2 },
    { name: 'multi_gauss', kind: 'regression', dim: 2 }, { name: 'sine', kind: 'regression', dim: 1 },
  ],
};

export const FEATURE_LABELS = {
  x1: 'x₁', x2: 'x₂', x1sq: 'x₁²', x2sq: 'x₂²', x1x2: 'x₁x₂', sinx1: 'sin x₁', sinx2: 'sin x₂',
};

const names = (v) => {
  if (!v) return null;
  if (Array.isArray(v)) return v.map((x) => (typeof x === 'string' ? x : x.name || x.id)).filter(Boolean);
  if (typeof v === 'object') return Object.keys(v);
  return null;
};

function datasets(raw) {
  const fb = Object.fromEntries(FALLBACK.datasets.map((d) => [d.name, d]));
  const norm = (d, kind) => {
    const o = typeof d === 'string' ? { name: d } : { ...d, name: d.name || d.id };
    const base = fb[o.name] || {};
    const dim = o.raw_dim ?? o.dim ?? o.input_dim ?? o.dims ?? o.n_features ?? base.dim ?? 2;
    return { name: o.name, kind: o.kind || o.task || kind || base.kind || 'classification', dim };
  };
  if (!raw) return FALLBACK.datasets;
  if (Array.isArray(raw)) return raw.map((d) => norm(d));
  if (typeof raw === 'object') {
    const keys = Object.keys(raw);
    if (keys.some((k) => ['classification', 'regression'].includes(k))) {
      return keys.flatMap((k) => (names(raw[k]) || []).map((n) => norm(
        Array.isArray(raw[k]) && typeof raw[k][0] === 'object' ? raw[k].find((d) => (d.name || d.id) === n) : { name: n }, k)));
    }
    return keys.map((k) => norm({ name: k, ...(typeof raw[k] === 'object' ? raw[k] : {}) }));
  }
  return FALLBACK.datasets;
}

export function normalizeCatalog(raw = {}) {
  raw = raw || {};
  const pick = (...keys) => { for (const k of keys) { const v = names(raw[k]); if (v && v.length) return v; } return null; };
  const optBlock = raw.optimizer && typeof raw.optimizer === 'object' && !Array.isArray(raw.optimizer) ? raw.optimizer : {};
  const cat = {
    activations: pick('activations', 'activation') || FALLBACK.activations,
    losses: pick('losses', 'loss') || FALLBACK.losses,
    optimizers: pick('optimizers') || names(optBlock.names) || FALLBACK.optimizers,
    inits: pick('inits', 'init', 'initializations', 'initializers') || FALLBACK.inits,
    regularization: pick('regularization', 'regularizations', 'regularization_kinds') || FALLBACK.regularization,
    dtypes: pick('dtypes', 'dtype') || FALLBACK.dtypes,
    features: pick('features') || FALLBACK.features,
    datasets: datasets(raw.datasets || raw.dataset),
    outputOnly: Array.isArray(raw.activations) && typeof raw.activations[0] === 'object'
      ? raw.activations.filter((a) => a.output_only).map((a) => a.name) : ['softmax'],
    limits: raw.limits || {},
  };
  DATASETS.regression = new Set(cat.datasets.filter((d) => d.kind === 'regression').map((d) => d.name));
  DATASETS.oneD = new Set(cat.datasets.filter((d) => Number(d.dim) === 1).map((d) => d.name));
  return cat;
}

/** Fill a <select> with option values (and keep the current value if present). */
export function fillSelect(select, values, current, label = (v) => v) {
  select.replaceChildren(...values.map((v) => {
    const o = document.createElement('option'); o.value = v; o.textContent = label(v); return o;
  }));
  if (current !== undefined && current !== null) {
    if (!values.includes(String(current))) {
      const o = document.createElement('option'); o.value = current; o.textContent = label(current); select.appendChild(o);
    }
    select.value = String(current);
  }
}

// GET /api/catalog as the page uses it: option lists, dataset kinds, the feature table and the engine's
// default spec (the page's defaults). It reads the shape the server sends (docs/api.md) and nothing
// else; the page loads it before anything else. Nothing here is mutated after it is built.

const SUB = { 1: '₁', 2: '₂' };

/** "x1^2" -> "x₁²", "x1*x2" -> "x₁x₂", "sin x1" -> "sin x₁": the engine's feature label for reading. */
export function prettyFeature(label) {
  return label.replace(/x(\d)/g, (_, d) => `x${SUB[d] || d}`).replace(/\^2/g, '²').replace(/\*/g, '');
}

/**
 * A feature's value at a raw point (x1, x2) from the engine's label: a product of factors, each
 * x1 / x2, optionally squared (^2), or sin of one. null for a label of another form.
 */
export function featureFunction(label) {
  const factors = label.split('*').map((f) => f.trim());
  const parsed = factors.map((f) => /^(sin )?x([12])(\^2)?$/.exec(f));
  if (parsed.some((m) => !m)) return null;
  return (x1, x2) => parsed.reduce((acc, [, sin, k, sq]) => {
    let v = k === '1' ? x1 : x2;
    if (sq) v *= v;
    return acc * (sin ? Math.sin(v) : v);
  }, 1);
}

function names(list, key) {
  if (!Array.isArray(list) || !list.length) throw new Error(`catalog: "${key}" must be a non-empty list`);
  return list.map((x) => (typeof x === 'string' ? x : x.name));
}

function deepFreeze(v) {
  if (v && typeof v === 'object') { Object.values(v).forEach(deepFreeze); Object.freeze(v); }
  return v;
}

/**
 * The page's catalog from GET /api/catalog's body. Throws for a body of another shape, so a server
 * change is seen at once instead of being guessed around.
 */
export function normalizeCatalog(src) {
  if (!src || typeof src !== 'object') throw new Error('catalog: expected an object');
  if (!src.defaults || !Array.isArray(src.defaults.layers) || !src.defaults.data) {
    throw new Error('catalog: "defaults" must be a spec with layers and data');
  }
  const datasets = src.datasets.map((d) => Object.freeze({ name: d.name, kind: d.kind, dim: d.raw_dim }));
  const byName = new Map(datasets.map((d) => [d.name, d]));
  const features = src.features.map((f) => Object.freeze({
    name: f.name, label: prettyFeature(f.label), value: featureFunction(f.label),
  }));
  return Object.freeze({
    activations: names(src.activations, 'activations'),
    outputOnly: src.activations.filter((a) => a.output_only).map((a) => a.name),
    losses: names(src.losses, 'losses'),
    optimizers: names(src.optimizers, 'optimizers'),
    inits: names(src.inits, 'inits'),
    regularization: names(src.regularizations, 'regularizations'),
    dtypes: names(src.dtypes, 'dtypes'),
    features: features.map((f) => f.name),
    feature: (name) => features.find((f) => f.name === name) || null,
    datasets,
    dataset: (name) => byName.get(name) || null,
    isRegression: (name) => (byName.get(name) || {}).kind === 'regression',
    isTwoD: (name) => (byName.get(name) || { dim: 2 }).dim !== 1,
    limits: Object.freeze({ ...(src.limits || {}) }),
    /** The engine's default spec (the body of POST /api/models that an empty body means). */
    defaults: deepFreeze(JSON.parse(JSON.stringify(src.defaults))),
    /** An optimizer's default parameters ({learning_rate, momentum, ...}), {} for an unknown name. */
    optimizerParams: (name) => ({ ...((src.optimizers.find((o) => o.name === name) || {}).params || {}) }),
  });
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

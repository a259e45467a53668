// node --test tests/js: the URL state round trip, the catalog's feature table and the palette.
import test from 'node:test';
import assert from 'node:assert/strict';

import {
  PARAMS, defaultConfig as defaultsOf, fromQuery, fromSpec, readQuery, toQuery, toSpec, uploadToFit, useUpload,
} from '../../static/js/state.js';
import { featureFunction, normalizeCatalog, prettyFeature } from '../../static/js/catalog.js';
import { serverCatalog } from './server-catalog.mjs';

const catalog = normalizeCatalog(serverCatalog);
const defaultConfig = () => defaultsOf(catalog);

test("the page's defaults are the engine's default spec, as the catalog sends it", () => {
  const spec = toSpec(defaultConfig(), catalog);
  const { input_size: _, ...defaults } = serverCatalog.defaults;
  const { name, learning_rate } = defaults.optimizer;   // the page sends adam's betas and eps as defaults
  const { momentum } = serverCatalog.optimizers.find((o) => o.name === 'momentum').params;
  assert.deepEqual(spec, { ...defaults, optimizer: { name, learning_rate, momentum } });
  assert.equal(defaultConfig().custom, null);
});

test('every configuration field and the open model are in the URL table; every key once', () => {
  const fields = new Set(PARAMS.map(([, field]) => field));
  assert.deepEqual([...fields].sort(), [...Object.keys(defaultConfig()), 'model'].sort());
  assert.equal(new Set(PARAMS.map(([key]) => key)).size, PARAMS.length);
});

test('the open model is in the page URL only when given, and reads back apart from the configuration', () => {
  const cfg = { ...defaultConfig(), custom: { dataset_id: 'abc', standardize: false } };
  const q = toQuery(cfg, 'm-1');
  assert.match(q, /&did=abc&model=m-1$/);
  assert.doesNotMatch(toQuery(cfg), /(^|&)(model|std)=/);
  assert.deepEqual(readQuery(`?${q}`, catalog), { config: cfg, model: 'm-1' });
  assert.deepEqual(readQuery('?std=1', catalog), { config: defaultConfig(), model: null });   // std without did
});

test('a link naming an upload without out and loss has them fitted to its targets', () => {
  assert.equal(uploadToFit('?did=abc&h=4.tanh'), 'abc');
  for (const q of ['?did=abc&out=1.sigmoid', '?did=abc&loss=bce', '?dataset=xor', '?did=']) assert.equal(uploadToFit(q), null);
  const ds = { id: 'abc', rows: 16, input_columns: ['a', 'b'], target_columns: ['label'], classes: ['no', 'yes'] };
  const fit = (d) => { const c = useUpload(fromQuery('?did=abc&std=1', catalog), d, { standardize: true }); return [c.output, c.loss]; };
  assert.deepEqual(fit({ ...ds, target_kind: 'classes' }), [{ units: 2, activation: 'softmax' }, 'cross_entropy']);
  assert.deepEqual(fit({ ...ds, classes: null, target_kind: 'binary' }), [{ units: 1, activation: 'sigmoid' }, 'bce']);
  assert.deepEqual(fit({ ...ds, classes: null, target_columns: ['p', 'q'], target_kind: 'numbers' }),
    [{ units: 2, activation: 'identity' }, 'mse']);
  const cfg = useUpload(fromQuery('?did=abc&std=1', catalog), { ...ds, target_kind: 'classes' }, { standardize: true });
  assert.deepEqual(cfg.custom, { dataset_id: 'abc', standardize: true, rows: 16, input_columns: ['a', 'b'],
    target_columns: ['label'], classes: ['no', 'yes'] });
  assert.match(toQuery(cfg), /&out=2\.softmax&loss=cross_entropy&.*&did=abc&std=1$/);
});

test('a configuration survives the URL both ways', () => {
  const cfgs = [defaultConfig(), {
    ...defaultConfig(), dataset: 'spiral', samples: 300, noise: 0.15, test_fraction: 0.3, data_seed: 7,
    features: ['x1', 'x2', 'sinx1'], hidden: [{ units: 6, activation: 'relu' }, { units: 3, activation: 'tanh' }],
    output: { units: 2, activation: 'softmax' }, loss: 'cross_entropy', bias: false, init: 'he', init_std: 0.5,
    seed: 12, dtype: 'float32', optimizer: 'momentum', learning_rate: 0.001, momentum: 0.8,
    reg_kind: 'l2', reg_rate: 0.0001, batch_size: null,
  }, { ...defaultConfig(), hidden: [], custom: { dataset_id: 'abc-123', standardize: true } }];
  for (const cfg of cfgs) assert.deepEqual(fromQuery(`?${toQuery(cfg)}`, catalog), cfg);
});

test('missing or broken keys keep their defaults; a regression dataset gets its output and loss', () => {
  assert.deepEqual(fromQuery('?n=abc&lr=&h=8.tanh,bad', catalog),
    { ...defaultConfig(), hidden: [{ units: 8, activation: 'tanh' }] });
  const plane = fromQuery('?dataset=plane', catalog);
  assert.deepEqual([plane.output, plane.loss], [{ units: 1, activation: 'identity' }, 'mse']);
});

test('a spec made from a configuration reads back as the same configuration', () => {
  const cfg = fromQuery('?dataset=xor&h=5.tanh&out=1.sigmoid&lr=0.1&bs=full&f=x1,x2,x1x2', catalog);
  const spec = toSpec(cfg, catalog);
  assert.deepEqual(spec.data.features, ['x1', 'x2', 'x1x2']);
  assert.deepEqual(fromSpec({ ...spec, optimizer: { ...spec.optimizer } }, defaultConfig()), cfg);
  assert.equal(toSpec(fromQuery('?dataset=sine', catalog), catalog).data.features, undefined);   // 1-D: no features
});

test('the catalog is read as the server sends it, and nothing in it can be changed', () => {
  assert.throws(() => normalizeCatalog({ ...serverCatalog, activations: { tanh: {} } }), /activations/);
  assert.throws(() => normalizeCatalog({ ...serverCatalog, defaults: null }), /defaults/);
  assert.throws(() => normalizeCatalog(null), /expected an object/);
  assert.ok(Object.isFrozen(catalog) && Object.isFrozen(catalog.datasets[0]));
  assert.equal(catalog.isRegression('plane'), true);
  assert.equal(catalog.isTwoD('sine'), false);
  assert.deepEqual(catalog.outputOnly, ['softmax']);
});

test('the feature table comes from the engine labels', () => {
  assert.deepEqual(serverCatalog.features.map((f) => prettyFeature(f.label)), ['x₁', 'x₂', 'x₁²', 'x₂²', 'x₁x₂', 'sin x₁', 'sin x₂']);
  const at = (label) => featureFunction(label)(1.5, -2);
  assert.deepEqual(['x1', 'x2', 'x1^2', 'x2^2', 'x1*x2', 'sin x1', 'sin x2'].map(at),
    [1.5, -2, 2.25, 4, -3, Math.sin(1.5), Math.sin(-2)]);
  assert.equal(featureFunction('exp x1'), null);
  assert.equal(catalog.feature('x1sq').value(3, 0), 9);
});

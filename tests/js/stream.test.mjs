import test from 'node:test';
import assert from 'node:assert/strict';

import { lostConnection } from '../../static/js/api.js';

test('a dropped or shut-down server is a lost connection, to be opened again', () => {
  assert.deepEqual([1006, 1012, 1001, 1011].map(lostConnection), [true, true, true, true]);
});

test('a normal close (the model was deleted) and a refusal (44xx) are final', () => {
  assert.deepEqual([1000, 4401, 4403, 4404, 4429].map(lostConnection), [false, false, false, false, false]);
});

import test from 'node:test';
import assert from 'node:assert/strict';

import { RECONNECT, backoffDelay } from '../../static/js/backoff.js';

test('the wait doubles from the base and stops at the cap', () => {
  const top = (n) => backoffDelay(n, RECONNECT, () => 1);   // the largest wait of each try
  assert.deepEqual([0, 1, 2, 3, 4, 5, 6, 20].map(top), [500, 1000, 2000, 4000, 8000, 10_000, 10_000, 10_000]);
  assert.equal(backoffDelay(-3, RECONNECT, () => 1), 500);
});

test('jitter spreads each wait over the upper half of its step', () => {
  assert.deepEqual([0, 3, 9].map((n) => backoffDelay(n, RECONNECT, () => 0)), [250, 2000, 5000]);
  assert.equal(backoffDelay(2, RECONNECT, () => 0.5), 1500);
  for (let n = 0; n < 30; n++) {
    const d = backoffDelay(n);
    assert.ok(d >= Math.min(RECONNECT.cap, RECONNECT.base * 2 ** n) / 2 && d <= RECONNECT.cap, `try ${n}: ${d}`);
  }
});

test('another schedule is taken as given', () => {
  assert.equal(backoffDelay(3, { base: 100, factor: 3, cap: 60_000 }, () => 1), 2700);
});

import test from 'node:test';
import assert from 'node:assert/strict';

import { LUT, cssColor, fillRGBA, formatNum, lutIndex, maxAbs } from '../../static/js/charts/palette.js';

test('the scale is symmetric: -max is the first stop, 0 the middle, +max the last; out of range clamps', () => {
  assert.deepEqual([lutIndex(-1, 1), lutIndex(0, 1), lutIndex(1, 1)], [0, 128, 255]);
  assert.deepEqual([lutIndex(-5, 1), lutIndex(5, 1), lutIndex(NaN, 1), lutIndex(3, 0)], [0, 255, 127, 128]);
  assert.equal(cssColor(-1, 1), 'rgb(127,59,8)');      // ColorBrewer PuOr's darkest orange
  assert.equal(cssColor(1, 1), 'rgb(45,0,75)');        // and darkest purple
  assert.equal(LUT.length, 256 * 3);
});

test('maxAbs skips non-finite values; fillRGBA draws row 0 at the bottom with flipY', () => {
  assert.equal(maxAbs([[1, -3], [NaN, 2], [Infinity, 0]]), 3);
  const data = new Uint8ClampedArray(2 * 1 * 4);
  fillRGBA(data, [[-1], [1]], 1, { flipY: true });
  assert.deepEqual([...data.slice(0, 4)], [45, 0, 75, 255]);
  assert.deepEqual([...data.slice(4, 8)], [127, 59, 8, 255]);
});

test('numbers are short and readable', () => {
  assert.deepEqual([formatNum(0.123456), formatNum(1e-5), formatNum(123456), formatNum(null), formatNum(-Infinity)],
    ['0.123', '1.00e-5', '1.23e+5', '–', '-∞']);
});

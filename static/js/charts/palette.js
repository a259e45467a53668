// Diverging, colour-blind-safe palette (ColorBrewer PuOr): negative values are
// orange/brown, zero is near-white, positive values are purple.
const STOPS = ['#7f3b08', '#b35806', '#e08214', '#fdb863', '#fee0b6', '#f7f7f7',
  '#d8daeb', '#b2abd2', '#8073ac', '#542788', '#2d004b'];

const hex = (h) => [1, 3, 5].map((i) => parseInt(h.slice(i, i + 2), 16));
const RGB_STOPS = STOPS.map(hex);

/** 256-entry lookup table, RGB triplets, index 0 = -max, 255 = +max. */
export const LUT = new Uint8ClampedArray(256 * 3);
for (let i = 0; i < 256; i++) {
  const t = (i / 255) * (RGB_STOPS.length - 1);
  const k = Math.min(Math.floor(t), RGB_STOPS.length - 2);
  const f = t - k;
  for (let c = 0; c < 3; c++) {
    LUT[i * 3 + c] = RGB_STOPS[k][c] * (1 - f) + RGB_STOPS[k + 1][c] * f;
  }
}

export const NEG_COLOR = STOPS[1];
export const POS_COLOR = STOPS[9];
export const CSS_GRADIENT = `linear-gradient(to right, ${STOPS.join(', ')})`;

/** Index into LUT for value v on a symmetric scale [-max, max]. */
export function lutIndex(v, max) {
  if (!Number.isFinite(v)) return 127;
  const t = max > 0 ? v / max : 0;
  const c = t < -1 ? -1 : t > 1 ? 1 : t;
  return Math.round((c + 1) * 127.5);
}

export function cssColor(v, max) {
  const i = lutIndex(v, max) * 3;
  return `rgb(${LUT[i]},${LUT[i + 1]},${LUT[i + 2]})`;
}

/** Largest finite |value| of a (possibly nested) array. */
export function maxAbs(values) {
  let m = 0;
  for (const row of values) {
    if (Array.isArray(row)) {
      for (const v of row) { const a = Math.abs(v); if (a > m && Number.isFinite(a)) m = a; }
    } else {
      const a = Math.abs(row); if (a > m && Number.isFinite(a)) m = a;
    }
  }
  return m;
}

/**
 * Fill an ImageData-like RGBA buffer from a matrix (array of rows).
 * flipY draws row 0 at the bottom (used for plots whose row 0 is the lowest y).
 */
export function fillRGBA(data, matrix, max, { flipY = false, offset = 0 } = {}) {
  const rows = matrix.length;
  for (let r = 0; r < rows; r++) {
    const row = matrix[flipY ? rows - 1 - r : r];
    let p = r * row.length * 4;
    for (let c = 0; c < row.length; c++, p += 4) {
      const i = lutIndex(row[c] - offset, max) * 3;
      data[p] = LUT[i]; data[p + 1] = LUT[i + 1]; data[p + 2] = LUT[i + 2]; data[p + 3] = 255;
    }
  }
}

export function formatNum(v, digits = 3) {
  if (v === null || v === undefined || Number.isNaN(v)) return '–';
  if (!Number.isFinite(v)) return v > 0 ? '∞' : '-∞';
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e5)) return v.toExponential(digits - 1);
  return Number(v.toPrecision(digits)).toString();
}

/** A small legend element: -max [gradient] +max. */
export function makeLegend(container, label = '') {
  const el = document.createElement('div');
  el.className = 'legend';
  el.innerHTML = `<span class="legend-label"></span><span class="lo"></span>` +
    `<span class="bar" aria-hidden="true"></span><span class="hi"></span>`;
  el.querySelector('.bar').style.background = CSS_GRADIENT;
  el.querySelector('.legend-label').textContent = label;
  container.appendChild(el);
  let last = null;
  return {
    el,
    set(max, lo = -max, hi = max) {
      const key = `${lo}|${hi}`;
      if (key === last) return;
      last = key;
      el.querySelector('.lo').textContent = formatNum(lo, 2);
      el.querySelector('.hi').textContent = formatNum(hi, 2);
      el.title = `colour scale from ${formatNum(lo)} (orange) through 0 (white) to ${formatNum(hi)} (purple)`;
    },
  };
}

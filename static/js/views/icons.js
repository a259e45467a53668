// Small canvas icons for the dataset picker, drawn from a deterministic sketch of
// each dataset (no server round trip).
import { cssColor } from '../charts/palette.js';

function rng(seed) {
  let a = seed >>> 0;
  return () => { a = (a + 0x6D2B79F5) >>> 0; let t = a; t = Math.imul(t ^ (t >>> 15), t | 1); t ^= t + Math.imul(t ^ (t >>> 7), t | 61); return ((t ^ (t >>> 14)) >>> 0) / 4294967296; };
}

const SKETCH = {
  circle: (r) => { const a = r() * 6.283; const inner = r() < 0.5; const d = inner ? r() * 0.45 : 0.65 + r() * 0.3; return [d * Math.cos(a), d * Math.sin(a), inner ? 1 : 0]; },
  xor: (r) => { const x = r() * 2 - 1; const y = r() * 2 - 1; return [x, y, x * y > 0 ? 1 : 0]; },
  gauss: (r) => { const c = r() < 0.5 ? 1 : 0; const s = c ? 0.45 : -0.45; return [s + (r() - 0.5) * 0.6, s + (r() - 0.5) * 0.6, c]; },
  spiral: (r) => { const c = r() < 0.5 ? 1 : 0; const t = r() * 0.95; const a = t * 9.4 + (c ? Math.PI : 0); return [t * Math.cos(a), t * Math.sin(a), c]; },
  moons: (r) => { const c = r() < 0.5 ? 1 : 0; const a = r() * Math.PI; return c ? [Math.cos(a) * 0.6 - 0.25, Math.sin(a) * 0.6 - 0.15, 1] : [0.25 - Math.cos(a) * 0.6, 0.15 - Math.sin(a) * 0.6, 0]; },
};

const FIELD = {
  plane: (x, y) => (x + y) / 2,
  multi_gauss: (x, y) => Math.exp(-((x - 0.4) ** 2 + (y - 0.4) ** 2) * 5) - Math.exp(-((x + 0.4) ** 2 + (y + 0.3) ** 2) * 5),
};

export function drawDatasetIcon(canvas, name, kind) {
  const ctx = canvas.getContext('2d');
  const S = canvas.width;
  const map = (v) => ((v + 1) / 2) * S;
  ctx.fillStyle = '#fbfbfb'; ctx.fillRect(0, 0, S, S);
  if (FIELD[name] || (kind === 'regression' && name !== 'sine' && !SKETCH[name])) {
    const f = FIELD[name] || FIELD.plane;
    const step = 4;
    for (let px = 0; px < S; px += step) {
      for (let py = 0; py < S; py += step) {
        ctx.fillStyle = cssColor(f((px / S) * 2 - 1, 1 - (py / S) * 2), 1);
        ctx.fillRect(px, py, step, step);
      }
    }
    return;
  }
  if (name === 'sine') {
    const r = rng(7);
    ctx.fillStyle = '#542788';
    for (let i = 0; i < 40; i++) {
      const x = r() * 2 - 1; const y = Math.sin(x * 3.2) * 0.7 + (r() - 0.5) * 0.15;
      ctx.beginPath(); ctx.arc(map(x), map(-y), 1.6, 0, 6.283); ctx.fill();
    }
    return;
  }
  const sketch = SKETCH[name] || SKETCH.gauss;
  const r = rng(name.length * 131 + 3);
  for (let i = 0; i < 90; i++) {
    const [x, y, c] = sketch(r);
    ctx.fillStyle = cssColor(c ? 0.8 : -0.8, 1);
    ctx.beginPath(); ctx.arc(map(x), map(-y), 1.7, 0, 6.283); ctx.fill();
  }
}

// Gallery for the projector (GET /api/class/gallery): one tile per model with its live decision
// boundary and training points, big enough to read from the back of the room. In leaderboard
// order once a hidden test set exists, else by student.
import { cssColor, fillRGBA, maxAbs, formatNum } from '../charts/palette.js';
import { who } from './format.js';
import { studentOf } from './models.js';

const $ = (id) => document.getElementById(id);
export const TILE_PX = 240;   // CSS pixels per boundary; the full-screen grid scales tiles up

/**
 * One tile per student: their live model (the most recently updated), with `others` = how many more
 * they have. In leaderboard order (the ranked students first) once there is one, else as the server
 * sent them (by student). ranked: the leaderboard's rows [{id, nickname, rank}].
 */
export function studentTiles(models, ranked = []) {
  const live = new Map();
  for (const m of models) {
    const k = studentOf(m); const cur = live.get(k);
    if (!cur) live.set(k, { ...m, others: 0 });
    else live.set(k, m.updated_at > cur.updated_at ? { ...m, others: cur.others + 1 } : { ...cur, others: cur.others + 1 });
  }
  const rank = new Map(ranked.map((r) => [studentOf(r), r.rank]));
  return [...live.entries()].map(([k, m], i) => ({ ...m, rank: rank.get(k) ?? null, order: rank.has(k) ? rank.get(k) : ranked.length + 1 + i }))
    .sort((a, b) => a.order - b.order);
}

function draw(canvas, tile) {
  const dpr = window.devicePixelRatio || 1;
  const size = TILE_PX;
  if (canvas.width !== size * dpr) { canvas.width = size * dpr; canvas.height = size * dpr; }
  const ctx = canvas.getContext('2d');
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.fillStyle = '#fafafa'; ctx.fillRect(0, 0, size, size);
  if (!tile.output) return;
  const cls = tile.kind !== 'regression';
  const offset = cls ? 0.5 : 0;
  const max = cls ? 0.5 : Math.max(1e-9, maxAbs(tile.output), ...tile.points.map((p) => Math.abs(p[2])));
  const R = tile.output.length;
  const off = document.createElement('canvas'); off.width = R; off.height = R;
  const octx = off.getContext('2d');
  const img = octx.createImageData(R, R);
  fillRGBA(img.data, tile.output.map((r) => r.map((v) => (v === null ? offset : v))), max, { flipY: true, offset });
  octx.putImageData(img, 0, 0);
  ctx.globalAlpha = 0.7; ctx.imageSmoothingEnabled = true; ctx.drawImage(off, 0, 0, size, size); ctx.globalAlpha = 1;
  const [x0, x1] = tile.x_range; const [y0, y1] = tile.y_range;
  ctx.lineWidth = 1; ctx.strokeStyle = '#ffffff';
  for (const [x, y, label] of tile.points) {
    ctx.beginPath();
    ctx.arc(((x - x0) / (x1 - x0)) * size, size - ((y - y0) / (y1 - y0)) * size, 3.5, 0, 2 * Math.PI);
    ctx.fillStyle = cssColor(label - offset, max); ctx.fill(); ctx.stroke();
  }
}

export class Gallery {
  constructor() {
    this.tiles = new Map();   // model id -> {el, canvas, caption}
    $('gallery-fullscreen').addEventListener('click', () => this.toggleFullscreen());
    document.addEventListener('fullscreenchange', () => {
      const on = document.fullscreenElement === $('gallery-panel');
      $('gallery-panel').classList.toggle('fullscreen', on);
      $('gallery-fullscreen').textContent = on ? 'Leave full screen' : 'Full screen';
    });
  }

  toggleFullscreen() {
    const panel = $('gallery-panel');
    if (document.fullscreenElement) return document.exitFullscreen();
    // no Fullscreen API (or refused): the same big grid fills the window instead
    return panel.requestFullscreen ? panel.requestFullscreen().catch(() => panel.classList.toggle('fullscreen'))
      : panel.classList.toggle('fullscreen');
  }

  show(body, ranked) {
    const models = studentTiles(body.models, ranked);
    const keep = new Set(models.map((m) => m.id));
    for (const [id, t] of this.tiles) if (!keep.has(id)) { t.el.remove(); this.tiles.delete(id); }
    const root = $('gallery');
    models.forEach((m, i) => {
      let t = this.tiles.get(m.id);
      if (!t) {
        const el = document.createElement('figure'); el.className = 'tile'; el.setAttribute('role', 'listitem');
        el.dataset.model = m.id;
        const canvas = document.createElement('canvas'); canvas.className = 'tile-plot'; canvas.setAttribute('role', 'img');
        const caption = document.createElement('figcaption');
        el.append(canvas, caption);
        t = { el, canvas, caption };
        this.tiles.set(m.id, t);
      }
      if (root.children[i] !== t.el) root.insertBefore(t.el, root.children[i] || null);
      t.el.classList.toggle('diverged', !!m.diverged);
      t.canvas.setAttribute('aria-label', `${who(m)}: decision boundary on ${m.dataset} with the training points`);
      t.caption.innerHTML = '';
      const name = document.createElement('span'); name.className = 'tile-name';
      name.textContent = `${m.rank ? `#${m.rank} ` : ''}${who(m)}`;
      const meta = document.createElement('span'); meta.className = 'tile-meta';
      meta.textContent = `${m.dataset} · ${m.architecture} · step ${m.step} · test loss ${formatNum(m.test_loss, 3)}${m.diverged ? ' · diverged' : ''}${m.others ? ` · +${m.others} older model${m.others > 1 ? 's' : ''}` : ''}`;
      t.caption.append(name, meta);
      if (!m.output) t.canvas.setAttribute('aria-label', `${who(m)}: ${m.dataset} has no 2-D input plane to draw`);
      draw(t.canvas, m);
    });
    $('gallery-count').textContent = `(${models.length} student${models.length === 1 ? '' : 's'})`;
    $('gallery-note').textContent = body.total > body.models.length
      ? `Showing the ${body.models.length} most recently updated models (PLAYGROUND_GALLERY_MAX_MODELS = ${body.limit}).`
      : models.length ? '' : 'No models yet: students appear here when they open the playground.';
    $('gallery-order').textContent = ranked.length ? 'In leaderboard order' : 'By student (leaderboard order once a hidden test set exists)';
  }
}

// Small formatting helpers for the instructor tables.
import { formatNum } from '../charts/palette.js';

export const esc = (s) => String(s ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));

export const num = (v, digits = 4) => (v === null || v === undefined || !Number.isFinite(v) ? '–' : formatNum(v, digits));

/** A model's name in the class: its nickname, or the start of its id. */
export const who = (m) => (m.nickname && m.nickname.trim() ? m.nickname : `anonymous ${String(m.id).slice(0, 6)}`);

/** One table cell per value; `cls` marks numeric columns. */
export function row(cells) {
  const tr = document.createElement('tr');
  for (const c of cells) {
    const td = document.createElement('td');
    if (typeof c === 'object' && c !== null && !(c instanceof Node)) {
      td.textContent = c.text ?? ''; if (c.cls) td.className = c.cls; if (c.title) td.title = c.title;
    } else if (c instanceof Node) td.append(c);
    else td.textContent = String(c ?? '');
    tr.append(td);
  }
  return tr;
}

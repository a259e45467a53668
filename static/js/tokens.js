// What this browser remembers between page loads (localStorage): the token of every model
// it created (id -> token; the server shows a token once), the last model it had open, the
// forks it made (so their loss curves can be overlaid) and the student's nickname.
const KEYS = { tokens: 'bp.tokens.v1', last: 'bp.last.v1', forks: 'bp.forks.v1', nickname: 'bp.nickname.v1' };
const MAX_TOKENS = 200;
const MAX_FORKS = 100;

function read(key, fallback) {
  try {
    const v = JSON.parse(localStorage.getItem(key));
    return v === null || v === undefined ? fallback : v;
  } catch (e) { return fallback; }
}

function write(key, value) {
  try { localStorage.setItem(key, JSON.stringify(value)); } catch (e) { /* private mode or full: keep working */ }
}

/** Model tokens, oldest first (insertion order), at most MAX_TOKENS of them. */
export const tokens = {
  get(id) { return id ? read(KEYS.tokens, {})[id] || null : null; },
  set(id, token) {
    if (!id || !token) return;
    const all = read(KEYS.tokens, {});
    delete all[id]; all[id] = token;
    const ids = Object.keys(all);
    for (const old of ids.slice(0, Math.max(0, ids.length - MAX_TOKENS))) if (!forks.has(old)) delete all[old];
    write(KEYS.tokens, all);
  },
  remove(id) { const all = read(KEYS.tokens, {}); if (id in all) { delete all[id]; write(KEYS.tokens, all); } },
  last() { return read(KEYS.last, null); },
  setLast(id) { write(KEYS.last, id); },
};

/**
 * Forks made in this browser: [{id, parent, step, at}]. A family is every model connected
 * to a given one through these parent links.
 */
export const forks = {
  all() { return read(KEYS.forks, []); },
  add(parent, id, step) {
    const list = this.all().filter((f) => f.id !== id);
    list.push({ id, parent, step, at: Date.now() });
    write(KEYS.forks, list.slice(-MAX_FORKS));
  },
  has(id) { return this.all().some((f) => f.id === id || f.parent === id); },
  parentOf(id) { const f = this.all().find((x) => x.id === id); return f ? f.parent : null; },
  /** Ids connected to `id` (itself included), in the order they were made, the root first. */
  family(id) {
    const list = this.all();
    if (!list.some((f) => f.id === id || f.parent === id)) return [id];
    const seen = new Set([id]); let grew = true;
    while (grew) {
      grew = false;
      for (const f of list) {
        if (seen.has(f.id) !== seen.has(f.parent)) { seen.add(f.id); seen.add(f.parent); grew = true; }
      }
    }
    const order = [];
    for (const f of list) for (const x of [f.parent, f.id]) if (seen.has(x) && !order.includes(x)) order.push(x);
    return order;
  },
  /** Forget a model (deleted, or gone from the server); its children keep their own entries. */
  remove(id) { write(KEYS.forks, this.all().filter((f) => f.id !== id && f.parent !== id)); },
};

export const nickname = {
  get() { return read(KEYS.nickname, ''); },
  set(v) { write(KEYS.nickname, v); },
};

// Thin fetch + WebSocket wrapper around the Backprop Playground REST API (docs/api.md).
const BASE = '/api';

/** JSON.parse that tolerates bare NaN / Infinity tokens (Python's json emits them). */
export function parseJSON(text) {
  try { return JSON.parse(text); } catch (err) {
    return JSON.parse(text.replace(/-?\bInfinity\b|\bNaN\b/g, 'null'));
  }
}

export class ApiError extends Error {
  constructor(status, detail) {
    super(formatDetail(detail) || `HTTP ${status}`);
    this.status = status; this.detail = detail;
  }

  /** FastAPI-style validation errors: [{loc, msg, type}] or []. */
  get fieldErrors() { return Array.isArray(this.detail) ? this.detail : []; }
}

/** Human-readable text for an error `detail` (string, list of {loc,msg}, or object). */
export function formatDetail(detail) {
  if (detail === null || detail === undefined) return '';
  if (typeof detail === 'string') return detail;
  if (Array.isArray(detail)) {
    return detail.map((d) => {
      const loc = (d.loc || []).filter((p) => p !== 'body').join('.');
      return loc ? `${loc}: ${d.msg}` : d.msg;
    }).join('; ');
  }
  return JSON.stringify(detail);
}

async function request(method, path, body) {
  const init = { method, headers: { Accept: 'application/json' } };
  if (body !== undefined) { init.headers['Content-Type'] = 'application/json'; init.body = JSON.stringify(body); }
  const res = await fetch(BASE + path, init);
  const text = await res.text();
  let data = null;
  if (text) { try { data = parseJSON(text); } catch (e) { data = text; } }
  if (!res.ok) throw new ApiError(res.status, data && data.detail !== undefined ? data.detail : data || res.statusText);
  return data;
}

const m = (id) => `/models/${encodeURIComponent(id)}`;

export const api = {
  health: () => request('GET', '/health'),
  catalog: () => request('GET', '/catalog'),
  createModel: (spec) => request('POST', '/models', spec),
  getModel: (id) => request('GET', m(id)),
  patchModel: (id, body) => request('PATCH', m(id), body),
  deleteModel: (id) => request('DELETE', m(id)),
  reset: (id, body = {}) => request('POST', `${m(id)}/reset`, body),
  train: (id, steps) => request('POST', `${m(id)}/train`, { steps }),
  parameters: (id) => request('GET', `${m(id)}/parameters`),
  gradients: (id) => request('GET', `${m(id)}/gradients`),
  predict: (id, X) => request('POST', `${m(id)}/predict`, { X }),
  history: (id, since = 0, maxPoints = 2000) => request('GET', `${m(id)}/history?since=${since}&max_points=${maxPoints}`),
  gradcheck: (id, body = {}) => request('POST', `${m(id)}/gradcheck`, body),
  trace: (id, batchSize) => request('GET', `${m(id)}/trace${batchSize ? `?batch_size=${batchSize}` : ''}`),
  boundary: (id, resolution = 48) => request('GET', `${m(id)}/boundary?resolution=${resolution}`),
  data: (id) => request('GET', `${m(id)}/data`),
};

/**
 * WebSocket stream of training frames. Messages sent before the socket opens are queued.
 * handlers: {onFrame(frame), onError(detail), onClose()}
 */
export class Stream {
  constructor(modelId, handlers) {
    this.handlers = handlers; this.queue = []; this.closed = false;
    const proto = location.protocol === 'https:' ? 'wss' : 'ws';
    this.ws = new WebSocket(`${proto}://${location.host}${BASE}${m(modelId)}/stream`);
    this.ws.onopen = () => { for (const msg of this.queue) this.ws.send(msg); this.queue = []; };
    this.ws.onmessage = (ev) => {
      let msg;
      try { msg = parseJSON(ev.data); } catch (e) { handlers.onError?.(`bad frame: ${e.message}`); return; }
      if (msg.type === 'frame') handlers.onFrame?.(msg);
      else if (msg.type === 'error') handlers.onError?.(formatDetail(msg.detail));
    };
    this.ws.onerror = () => { if (!this.closed) handlers.onError?.('stream connection error'); };
    this.ws.onclose = () => { const was = this.closed; this.closed = true; if (!was) handlers.onClose?.(); };
  }

  get open() { return !this.closed; }

  send(obj) {
    const msg = JSON.stringify(obj);
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(msg);
    else if (this.ws.readyState === WebSocket.CONNECTING) this.queue.push(msg);
  }

  close() { this.closed = true; try { this.ws.close(); } catch (e) { /* already closed */ } }
}

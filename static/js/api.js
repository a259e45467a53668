// Thin fetch + WebSocket wrapper around the Backprop Playground REST API (docs/api.md).
// Calls that change a model send its token (kept by tokens.js) as a bearer token; the
// stream sends it in its first message (browsers cannot set WebSocket headers, and a URL's
// ?token= would end up in access logs).
import { tokens } from './tokens.js';

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

/**
 * A call that did not reach the server: fetch failed (the server is down, the network is cut), or a proxy
 * in front answered that the server behind it is (502, 504). Status 0 for a failed fetch.
 */
export class NetworkError extends ApiError {
  constructor(status, detail) { super(status, detail); this.network = true; }
}

/** Whether `err` says the server was unreachable (so the call may be made again once it answers). */
export const unreachable = (err) => !!(err && err.network);

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

async function errorOf(res) {
  const text = await res.text();
  let data = null;
  if (text) { try { data = parseJSON(text); } catch (e) { data = text; } }
  return new ApiError(res.status, data && data.detail !== undefined ? data.detail : data || res.statusText);
}

/**
 * One API call. opts: {token} a bearer token, {raw: body, type} a body sent as is,
 * {as: 'json' | 'blob' | 'response'} what to return.
 */
export async function request(method, path, body, opts = {}) {
  const init = { method, headers: { Accept: 'application/json' } };
  if (opts.token) init.headers.Authorization = `Bearer ${opts.token}`;
  if (opts.raw !== undefined) { init.headers['Content-Type'] = opts.type || 'application/json'; init.body = opts.raw; }
  else if (body !== undefined) { init.headers['Content-Type'] = 'application/json'; init.body = JSON.stringify(body); }
  let res;
  try { res = await fetch(BASE + path, init); } catch (err) { throw new NetworkError(0, err.message || 'network error'); }
  if (res.status === 502 || res.status === 504) { const e = await errorOf(res); throw new NetworkError(e.status, e.detail); }
  if (!res.ok) throw await errorOf(res);
  if (opts.as === 'blob') return res.blob();
  if (opts.as === 'response') return res;
  const text = await res.text();
  if (!text) return null;
  try { return parseJSON(text); } catch (e) { return text; }
}

const m = (id) => `/models/${encodeURIComponent(id)}`;

/** A call that changes model `id`: sends the token this browser holds for it. */
const owned = (method, id, path, body) => request(method, `${m(id)}${path}`, body, { token: tokens.get(id) });

/** A created / imported / forked model: its token is shown once, so keep it now. */
const keep = (model) => { if (model && model.id && model.token) tokens.set(model.id, model.token); return model; };

export const api = {
  health: () => request('GET', '/health'),
  catalog: () => request('GET', '/catalog'),
  createModel: (spec) => request('POST', '/models', spec).then(keep),
  getModel: (id) => request('GET', m(id)),
  patchModel: (id, body) => owned('PATCH', id, '', body),
  deleteModel: (id) => owned('DELETE', id, '').then((r) => { tokens.remove(id); return r; }),
  reset: (id, body = {}) => owned('POST', id, '/reset', body),
  train: (id, steps) => owned('POST', id, '/train', { steps }),
  fork: (id, body = {}) => request('POST', `${m(id)}/fork`, body, { token: tokens.get(id) }).then(keep),
  /** The export as a Blob plus the file name the server suggests. */
  exportModel: async (id, format = 'json') => {
    const res = await request('GET', `${m(id)}/export?format=${format}`, undefined, { token: tokens.get(id), as: 'response' });
    const cd = res.headers.get('content-disposition') || '';
    const name = (/filename="?([^";]+)"?/.exec(cd) || [])[1] || null;
    return { blob: await res.blob(), name };
  },
  /** body: the JSON export's text, or the .npz bytes (ArrayBuffer). */
  importModel: (body) => request('POST', '/models/import', undefined, {
    raw: body, type: typeof body === 'string' ? 'application/json' : 'application/octet-stream',
  }).then(keep),
  uploadDataset: (body) => request('POST', '/datasets', body),
  dataset: (id) => request('GET', `/datasets/${encodeURIComponent(id)}`),
  classStatus: () => request('GET', '/class/status'),
  parameters: (id) => request('GET', `${m(id)}/parameters`),
  gradients: (id) => request('GET', `${m(id)}/gradients`),
  predict: (id, X) => request('POST', `${m(id)}/predict`, { X }),
  history: (id, since = 0, maxPoints = 2000) => request('GET', `${m(id)}/history?since=${since}&max_points=${maxPoints}`),
  gradcheck: (id, body = {}) => request('POST', `${m(id)}/gradcheck`, body),
  /** The backward pass with shapes; convention 'rows' | 'columns', batchSize B (omitted: the server's). */
  trace: (id, { convention, batchSize } = {}) => {
    const q = new URLSearchParams();
    if (convention) q.set('convention', convention);
    if (batchSize) q.set('batch_size', batchSize);
    const query = q.toString();
    return request('GET', `${m(id)}/trace${query ? `?${query}` : ''}`);
  },
  check: (id, body) => request('POST', `${m(id)}/check`, body),
  derive: (id, body) => request('POST', `${m(id)}/derive`, body),
  /** The question's and the passing equations, for model `id` (null: the default net). */
  deriveExamples: (id) => request('GET', id ? `${m(id)}/derive/examples` : '/derive/examples'),
  boundary: (id, resolution = 48) => request('GET', `${m(id)}/boundary?resolution=${resolution}`),
  data: (id) => request('GET', `${m(id)}/data`),
};

/**
 * A stream grid (docs/api.md "Stream messages"): 8-bit levels, base64, of an array of `shape`,
 * value = lo + (hi - lo) * level / 255, back to nested arrays of numbers (rows of columns).
 */
export function ungrid(g) {
  const bin = atob(g.u8);
  const scale = (g.hi - g.lo) / 255;
  const flat = new Float64Array(bin.length);
  for (let i = 0; i < bin.length; i++) flat[i] = g.lo + scale * bin.charCodeAt(i);
  const nest = (shape, offset) => {
    if (shape.length === 1) return Array.from(flat.subarray(offset, offset + shape[0]));
    const step = shape.slice(1).reduce((a, b) => a * b, 1);
    const out = new Array(shape[0]);
    for (let i = 0; i < shape[0]; i++) out[i] = nest(shape.slice(1), offset + i * step);
    return out;
  };
  return nest(g.shape, 0);
}

/** A stream frame with its boundary grids as nested arrays (the shape GET /boundary answers with). */
export function decodeFrame(frame) {
  const b = frame.boundary;
  if (b && b.output && b.output.u8 !== undefined) {
    // neurons is null for nets with too many hidden neurons to draw (docs/api.md)
    frame.boundary = { ...b, output: ungrid(b.output), neurons: b.neurons ? b.neurons.map(ungrid) : null };
  }
  return frame;
}

/**
 * WebSocket stream of training frames (schemas.StreamFrame). Messages sent before the socket
 * opens are queued; the first one sent is always {"action": "auth", "token"} when a token is held.
 * handlers: {onOpen(), onFrame(frame), onError(ApiError), onClose(code)}; an error message's `status`
 * (423 frozen) or the close code (4401 / 4403 / 4404) becomes the error's status. A connection that fails
 * or drops is told by onClose alone (code 1006, or 1012 from a server shutting down): see `lostConnection`.
 */
/**
 * Whether a stream's close code means the server went away (a restart, a dead replica, a network cut), so
 * the same model's stream may be opened again: not a normal close (1000: the model was deleted) and not a
 * refusal (44xx: unknown model, refused token, rate limit).
 */
export function lostConnection(code) {
  return code !== 1000 && !(code >= 4400 && code < 4500);
}

export class Stream {
  constructor(modelId, handlers) {
    this.handlers = handlers; this.queue = []; this.closed = false;
    const proto = location.protocol === 'https:' ? 'wss' : 'ws';
    const token = tokens.get(modelId);
    if (token) this.queue.push(JSON.stringify({ action: 'auth', token }));
    this.ws = new WebSocket(`${proto}://${location.host}${BASE}${m(modelId)}/stream`);
    this.ws.onopen = () => { for (const msg of this.queue) this.ws.send(msg); this.queue = []; handlers.onOpen?.(); };
    this.ws.onmessage = (ev) => {
      let msg;
      // frames are strict JSON (non-finite numbers are null)
      try { msg = JSON.parse(ev.data); } catch (e) { handlers.onError?.(new ApiError(0, `bad frame: ${e.message}`)); return; }
      if (msg.type === 'frame') handlers.onFrame?.(decodeFrame(msg));
      else if (msg.type === 'error') {
        // a refused token comes as an error message followed by a 44xx close: report them once, as the close
        this.lastError = msg;
        const status = msg.status || (/frozen by the instructor/.test(msg.detail || '') ? 423 : 0);
        if (status) { handlers.onError?.(new ApiError(status, msg.detail)); return; }
        this.pendingError = setTimeout(() => { this.pendingError = null; handlers.onError?.(new ApiError(0, msg.detail)); }, 60);
      }
    };
    this.ws.onerror = () => { /* always followed by onclose, which says what happened */ };
    this.ws.onclose = (ev) => {
      const was = this.closed; this.closed = true;
      if (was) return;
      if (ev.code >= 4400 && ev.code < 4500) {
        clearTimeout(this.pendingError); this.pendingError = null;
        const detail = this.lastError ? this.lastError.detail : `stream closed (${ev.code})`;
        handlers.onError?.(new ApiError(ev.code - 4000, detail));
      }
      handlers.onClose?.(ev.code);
    };
  }

  get open() { return !this.closed; }

  send(obj) {
    const msg = JSON.stringify(obj);
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(msg);
    else if (this.ws.readyState === WebSocket.CONNECTING) this.queue.push(msg);
  }

  close() { this.closed = true; try { this.ws.close(); } catch (e) { /* already closed */ } }
}

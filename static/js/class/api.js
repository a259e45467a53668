// Instructor calls: /api/class/* with the admin token (kept in sessionStorage, so it is
// forgotten when the tab closes) as a bearer token.
import { request } from '../api.js';

const KEY = 'bp.admin-token';

export const adminToken = {
  get() { try { return sessionStorage.getItem(KEY) || ''; } catch (e) { return ''; } },
  set(v) { try { if (v) sessionStorage.setItem(KEY, v); else sessionStorage.removeItem(KEY); } catch (e) { /* ignore */ } },
};

const admin = (method, path, body) => request(method, `/class${path}`, body, { token: adminToken.get() || undefined });

export const classApi = {
  status: () => request('GET', '/class/status'),
  models: () => admin('GET', '/models'),
  curves: (maxPoints = 200) => admin('GET', `/curves?max_points=${maxPoints}`),
  leaderboard: () => admin('GET', '/leaderboard'),
  gallery: (resolution = 32) => admin('GET', `/gallery?resolution=${resolution}`),
  hiddenTest: (body) => admin('PUT', '/hidden-test', body),
  setPreset: (body) => admin('PUT', '/preset', body),
  clearPreset: () => admin('DELETE', '/preset'),
  freeze: (frozen) => admin('PUT', '/freeze', { frozen }),
};

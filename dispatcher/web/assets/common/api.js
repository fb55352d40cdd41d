// The HTTP API (API.md) from a page: bearer token, JSON, and the API's
// error body turned into an ApiError a page can show.
import { session, clearSession, toLogin, saveSession } from './session.js';

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** Network down, server down: the caller says "offline", not "error". */
export class OfflineError extends Error {}

export async function api(method, path, body, { accept } = {}) {
  const s = session();
  const headers = {};
  if (s) headers.Authorization = 'Bearer ' + s.token;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (accept) headers.Accept = accept;
  let res;
  try {
    res = await fetch('/api/v1' + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new OfflineError(String(e));
  }
  if (res.status === 401 && path !== '/auth/login') {
    clearSession();
    toLogin();
    throw new ApiError(401, 'unauthenticated', 'session expired');
  }
  if (!res.ok) {
    let code = 'http_' + res.status;
    let message = res.statusText;
    try {
      const b = await res.json();
      code = b.error?.code ?? code;
      message = b.error?.message ?? message;
    } catch { /* not JSON */ }
    throw new ApiError(res.status, code, message);
  }
  if (accept && accept !== 'application/json') return res.text();
  if (res.status === 204) return null;
  const text = await res.text();
  return text ? JSON.parse(text) : null;
}

export async function login(username, password) {
  const r = await api('POST', '/auth/login', { username, password });
  const s = { token: r.token, role: r.role, steward_id: r.steward_id ?? null, username };
  saveSession(s);
  return s;
}

export async function logout() {
  try { await api('POST', '/auth/logout'); } catch { /* logging out anyway */ }
  clearSession();
  toLogin();
}

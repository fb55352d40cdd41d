// Links into the app. `#incident=<id>` (from a notification, or after a
// link below) shows that offer or incident; `#link=<token>` is the
// single-use link an SMS carries, redeemed here: without a login it
// gives this phone the steward's session, with one it only says which
// incident it is about.
import { session, saveSession, clearSession } from '../common/session.js';

/** The value of `#name=value` in the address, or null. */
export function hashParam(name) {
  const m = location.hash.match(new RegExp(`^#${name}=(.+)$`));
  if (!m) return null;
  try {
    return decodeURIComponent(m[1]);
  } catch {
    // A link mangled on its way (a stray %): taken as it is, the server
    // then refuses it plainly.
    return m[1];
  }
}

/** Drops the hash without a reload or a history entry. */
export function clearHash(hash = '') {
  history.replaceState(history.state, '', location.pathname + location.search + hash);
}

/**
 * Redeems `#link=` if the address has one; called before the app asks
 * for a login, so a link is all a logged-out phone needs. Plain fetch,
 * not api(): a refused link must not send the phone to the login page.
 * @returns {Promise<null|{code:string, message?:string}>} null when there
 *   was no link or it worked (the address then says `#incident=`)
 */
export async function redeemLink() {
  const token = hashParam('link');
  if (!token) return null;
  let s = session();
  let r = await redeem(token, s?.role === 'steward' ? s.token : null);
  // Refused with this phone's login: an expired session is no reason to
  // lose the link (without it the link logs in by itself); another
  // steward's link is, and the server says so.
  if (r.status === 401 && s && !(await loggedIn(s.token))) {
    clearSession();
    s = null;
    r = await redeem(token, null);
  }
  if (r.status === 0) return { code: 'offline' }; // kept in the address: a reload tries again
  // Used or refused, the token is spent: a reload must not try it again.
  if (r.status !== 200) {
    clearHash();
    return { code: r.body?.error?.code ?? 'http_' + r.status, message: r.body?.error?.message ?? '' };
  }
  if (r.body.token) {
    saveSession({ token: r.body.token, role: r.body.role, steward_id: r.body.steward_id, username: r.body.username });
  }
  clearHash('#incident=' + encodeURIComponent(r.body.incident_id));
  return null;
}

/** POST /offer-links/redeem; status 0 when the network failed. */
async function redeem(token, bearer) {
  const headers = { 'Content-Type': 'application/json' };
  if (bearer) headers.Authorization = 'Bearer ' + bearer;
  // A phone on a bad line must not sit on a blank page: give up after
  // 10 s, say offline, keep the link for a reload.
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), 10_000);
  try {
    const res = await fetch('/api/v1/offer-links/redeem', {
      method: 'POST', headers, body: JSON.stringify({ token }), signal: abort.signal,
    });
    return { status: res.status, body: await res.json().catch(() => null) };
  } catch {
    return { status: 0, body: null };
  } finally {
    clearTimeout(timer);
  }
}

async function loggedIn(bearer) {
  try {
    const res = await fetch('/api/v1/auth/me', { headers: { Authorization: 'Bearer ' + bearer } });
    return res.status !== 401;
  } catch {
    return true;
  }
}

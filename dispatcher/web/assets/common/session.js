// The login session, kept in localStorage so a phone that lost its tab
// (or its battery) comes back logged in.
const KEY = 'eldercare.session';

/** @returns {{token:string, role:string, steward_id:string|null, username:string}|null} */
export function session() {
  try {
    const s = JSON.parse(localStorage.getItem(KEY));
    return s && typeof s.token === 'string' ? s : null;
  } catch {
    return null;
  }
}

export function saveSession(s) {
  localStorage.setItem(KEY, JSON.stringify(s));
}

export function clearSession() {
  localStorage.removeItem(KEY);
}

/** Where a role belongs after login. */
export function homeFor(role) {
  return role === 'steward' ? '/app/' : '/board/';
}

/** Thrown to stop a page's module while the browser leaves for login. */
export class LeavingForLogin extends Error {}

// Leaving for login is not an error: keep it out of the console.
window.addEventListener('error', (e) => {
  if (e.error instanceof LeavingForLogin) e.preventDefault();
});

/**
 * Sends to the login page unless logged in with one of `roles`; throws
 * LeavingForLogin then, so the page's module stops where it stands.
 */
export function requireSession(roles) {
  const s = session();
  if (!s || (roles && !roles.includes(s.role))) {
    toLogin();
    throw new LeavingForLogin('not logged in');
  }
  return s;
}

export function toLogin() {
  const next = location.pathname + location.search + location.hash;
  location.replace('/login?next=' + encodeURIComponent(next));
}

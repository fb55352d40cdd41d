import { login, ApiError, OfflineError } from './api.js';
import { session, homeFor } from './session.js';
import { apply, t, languageToggle } from './i18n.js';

apply();
languageToggle(document.getElementById('lang'));

function next(role) {
  const n = new URLSearchParams(location.search).get('next');
  // Only paths on this server: never an open redirect.
  const home = homeFor(role);
  if (n && n.startsWith('/') && !n.startsWith('//') && n.startsWith(home)) return n;
  return home;
}

const existing = session();
if (existing) {
  fetch('/api/v1/auth/me', { headers: { Authorization: 'Bearer ' + existing.token } })
    .then((r) => { if (r.ok) location.replace(next(existing.role)); })
    .catch(() => {});
}

const form = document.getElementById('login-form');
const error = document.getElementById('login-error');
form.addEventListener('submit', async (e) => {
  e.preventDefault();
  error.textContent = '';
  const button = form.querySelector('button[type=submit]');
  button.disabled = true;
  try {
    const s = await login(form.username.value.trim(), form.password.value);
    location.replace(next(s.role));
  } catch (err) {
    if (err instanceof OfflineError) error.textContent = t('login.offline');
    else if (err instanceof ApiError && err.status === 429) error.textContent = t('login.locked');
    else if (err instanceof ApiError && err.status === 401) error.textContent = t('login.failed');
    else error.textContent = t('common.error', { message: err.message });
    form.password.select();
  } finally {
    button.disabled = false;
  }
});

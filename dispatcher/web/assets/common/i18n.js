// Simplified Chinese and English. The language comes from the user's
// choice (kept in localStorage), else the browser's languages. Each page
// registers its own strings with `register`; markup names them with
// data-i18n (text), data-i18n-placeholder, data-i18n-title and
// data-i18n-aria-label, and `apply` fills them in.
const KEY = 'eldercare.lang';
export const LANGS = ['zh', 'en'];
const dicts = { en: {}, zh: {} };
const listeners = [];
let current = detect();

function detect() {
  const saved = localStorage.getItem(KEY);
  if (LANGS.includes(saved)) return saved;
  for (const l of navigator.languages ?? [navigator.language]) {
    if (/^zh\b/i.test(l)) return 'zh';
    if (/^en\b/i.test(l)) return 'en';
  }
  return 'en';
}

export function register(strings) {
  for (const l of LANGS) Object.assign(dicts[l], strings[l] ?? {});
}

export function lang() {
  return current;
}

/** BCP 47 tag for Intl and the html lang attribute. */
export function locale() {
  return current === 'zh' ? 'zh-CN' : 'en';
}

export function setLang(l) {
  if (!LANGS.includes(l)) return;
  current = l;
  localStorage.setItem(KEY, l);
  apply();
  for (const f of listeners) f(l);
}

export function onLangChange(f) {
  listeners.push(f);
}

/** The string for `key`, with `{name}` replaced from `vars`. */
export function t(key, vars) {
  let s = dicts[current][key] ?? dicts.en[key] ?? key;
  if (vars) s = s.replace(/\{(\w+)\}/g, (m, k) => (k in vars ? String(vars[k]) : m));
  return s;
}

export function apply(root = document) {
  document.documentElement.lang = locale();
  for (const el of root.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n);
  for (const [attr, data] of [
    ['placeholder', 'i18nPlaceholder'],
    ['title', 'i18nTitle'],
    ['aria-label', 'i18nAriaLabel'],
  ]) {
    for (const el of root.querySelectorAll(`[data-${'i18n-' + attr}]`)) el.setAttribute(attr, t(el.dataset[data]));
  }
}

/** A button that switches between the two languages, labelled in the other one. */
export function languageToggle(button) {
  const label = () => {
    button.textContent = current === 'zh' ? 'English' : '中文';
    button.lang = current === 'zh' ? 'en' : 'zh-CN';
  };
  label();
  button.addEventListener('click', () => { setLang(current === 'zh' ? 'en' : 'zh'); label(); });
}

/** "3 min 05 s" style durations for timers. */
export function duration(seconds) {
  if (seconds == null || !isFinite(seconds)) return '–';
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const r = String(s % 60).padStart(2, '0');
  return h ? `${h}:${String(m).padStart(2, '0')}:${r}` : `${m}:${r}`;
}

export function time(iso) {
  if (!iso) return '–';
  return new Date(iso).toLocaleTimeString(locale(), { hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

export function dateTime(iso) {
  if (!iso) return '–';
  return new Date(iso).toLocaleString(locale(), { dateStyle: 'short', timeStyle: 'medium' });
}

register({
  en: {
    'app.name': 'Eldercare Dispatch',
    'login.title': 'Log in',
    'login.username': 'Username',
    'login.password': 'Password',
    'login.submit': 'Log in',
    'login.failed': 'Wrong username or password.',
    'login.locked': 'Too many attempts. Wait a minute and try again.',
    'login.offline': 'Cannot reach the server. Check the network and try again.',
    'common.logout': 'Log out',
    'common.offline': 'Offline: reconnecting… What you see may be out of date.',
    'common.connecting': 'Connecting…',
    'common.live': 'Live',
    'common.error': 'Something went wrong: {message}',
    'common.retry': 'Retry',
    'common.language': 'Language',
  },
  zh: {
    'app.name': '居家养老呼叫调度',
    'login.title': '登录',
    'login.username': '用户名',
    'login.password': '密码',
    'login.submit': '登录',
    'login.failed': '用户名或密码错误。',
    'login.locked': '尝试次数过多，请稍等一分钟再试。',
    'login.offline': '无法连接服务器，请检查网络后重试。',
    'common.logout': '退出登录',
    'common.offline': '已离线：正在重新连接……当前信息可能不是最新的。',
    'common.connecting': '正在连接……',
    'common.live': '实时',
    'common.error': '出错了：{message}',
    'common.retry': '重试',
    'common.language': '语言',
  },
});

// The steward app's service worker (scope /app/). Two jobs:
//
// - Alerts on a locked phone: the dispatcher Web-Pushes every offer
//   (again every 15 s until answered) and a `close` when it ends; this
//   worker shows them as notifications with Accept / Decline, and answers
//   from the notification through POST /api/v1/offer-actions with the
//   offer's own token (the worker has no login).
// - Opening with no network: the app shell is precached and served
//   cache-first, refreshed from the network in the background, so a
//   steward in a basement still sees the app and what it last knew.
//
// A classic script, not a module: Firefox runs no module service workers.
// It cannot import the app's i18n module either, so its few own words
// are in `WORDS` below; what the server sends is already in the steward's
// language.
'use strict';

// The dispatcher replaces this with a digest of every embedded asset
// (dispatcher/src/web.rs): a new release is a new worker, which
// precaches the new app and deletes the old cache.
const VERSION = '__ELDERCARE_ASSETS_VERSION__';
const CACHE_PREFIX = 'eldercare-app-';
const CACHE = CACHE_PREFIX + VERSION;
// Where the app leaves what the worker needs between pages (the server
// clock's offset); not versioned, so an upgrade keeps it.
const META = 'eldercare-meta';

// The app shell: the page, everything it imports, its styles and icons.
const SHELL = [
  '/app/',
  '/app/manifest.webmanifest',
  '/assets/common/base.css',
  '/assets/app/app.css',
  '/assets/common/api.js',
  '/assets/common/dom.js',
  '/assets/common/i18n.js',
  '/assets/common/session.js',
  '/assets/common/stream.js',
  '/assets/app/main.js',
  '/assets/app/alert.js',
  '/assets/app/elder.js',
  '/assets/app/followups.js',
  '/assets/app/incident.js',
  '/assets/app/links.js',
  '/assets/app/location.js',
  '/assets/app/offer.js',
  '/assets/app/push.js',
  '/assets/app/round.js',
  '/assets/app/saved.js',
  '/assets/app/strings.js',
  '/assets/common/icon.svg',
  '/assets/app/apple-touch-icon.png',
  '/assets/app/badge-96.png',
  '/assets/app/icon-192.png',
  '/assets/app/icon-512.png',
  '/assets/app/icon-maskable-512.png',
];

const ICON = '/assets/app/icon-192.png';
const BADGE = '/assets/app/badge-96.png';
const VIBRATE = [300, 150, 300, 150, 500];

const WORDS = {
  en: {
    app: 'Eldercare Dispatch',
    open_app: 'Open the app.',
    accept: 'Accept',
    decline: 'Decline',
    expired: 'This offer has expired: it has gone to another steward.',
    not_recorded: 'Your answer was not recorded',
    offer_expired: 'This offer expired before you answered. It has gone to another steward.',
    // Also what a Decline after one's own Accept gets: said neutrally.
    already_taken: 'This incident has already been taken. Open the app to see whose it is.',
    bad_token: 'This alert can no longer be answered from here. Open the app.',
    offline: 'Not sent: no connection. Open the app and try again.',
    failed: 'Not sent ({message}). Open the app and try again.',
  },
  zh: {
    app: '居家养老呼叫调度',
    open_app: '请打开应用。',
    accept: '接受',
    decline: '拒绝',
    expired: '此派单已过期，已转给其他服务员。',
    not_recorded: '您的答复未被记录',
    offer_expired: '您答复前派单已过期，已转给其他服务员。',
    already_taken: '此事件已被接受，请打开应用查看由谁负责。',
    bad_token: '此提醒已无法在这里答复，请打开应用。',
    offline: '未发送：没有网络连接。请打开应用再试一次。',
    failed: '未发送（{message}）。请打开应用再试一次。',
  },
};

function langOf(data) {
  if (data && (data.lang === 'zh' || data.lang === 'en')) return data.lang;
  return /^zh\b/i.test(self.navigator.language || '') ? 'zh' : 'en';
}

function say(lang, key, vars) {
  let s = WORDS[lang][key] || WORDS.en[key];
  if (vars) s = s.replace(/\{(\w+)\}/g, (m, k) => (k in vars ? String(vars[k]) : m));
  return s;
}

// --- the app shell -----------------------------------------------------------

self.addEventListener('install', (event) => {
  event.waitUntil((async () => {
    const cache = await caches.open(CACHE);
    // `no-cache`: revalidate with the server, never copy a stale HTTP cache entry.
    // File by file: on a bad line a file that fails is fetched (and
    // cached) when the app first asks for it, and the worker, which
    // carries the alerts, installs all the same.
    await Promise.allSettled(SHELL.map(async (url) => {
      const res = await fetch(new Request(url, { cache: 'no-cache' }));
      if (res.ok) await cache.put(url, res);
    }));
    await self.skipWaiting();
  })());
});

self.addEventListener('activate', (event) => {
  event.waitUntil((async () => {
    for (const name of await caches.keys()) {
      if (name.startsWith(CACHE_PREFIX) && name !== CACHE) await caches.delete(name);
    }
    await self.clients.claim();
  })());
});

const SHELL_PATHS = new Set(SHELL);

self.addEventListener('fetch', (event) => {
  const req = event.request;
  if (req.method !== 'GET') return;
  const url = new URL(req.url);
  // The API (and its event stream) always goes to the network, untouched:
  // a cached answer would show a steward an offer that no longer exists.
  if (url.origin !== self.location.origin || url.pathname.startsWith('/api/')) return;
  if (req.mode === 'navigate' && url.pathname.startsWith('/app/') && url.pathname !== '/app/sw.js') {
    event.respondWith(cacheFirst(event, '/app/'));
  } else if (SHELL_PATHS.has(url.pathname)) {
    event.respondWith(cacheFirst(event, url.pathname));
  }
});

/**
 * The cached copy (the app opens with no network); the network when
 * nothing is cached yet, kept for next time. Never refreshed behind the
 * app's back: the cache's name changes with every release, so what it
 * holds is one release, whole, and a new release is a new worker.
 */
async function cacheFirst(event, key) {
  const cache = await caches.open(CACHE);
  const hit = await cache.match(key, { ignoreSearch: true });
  if (hit) return hit;
  const res = await fetch(key, { cache: 'no-cache' });
  if (res.ok) event.waitUntil(cache.put(key, res.clone()));
  return res;
}

// --- push ------------------------------------------------------------------

self.addEventListener('push', (event) => {
  let payload = null;
  try {
    payload = event.data ? event.data.json() : null;
  } catch {
    payload = null;
  }
  event.waitUntil(handlePush(payload));
});

/** What a push becomes on the phone. Every push shows something (Chrome requires it). */
async function handlePush(payload) {
  if (payload && payload.type === 'offer') return showOffer(payload);
  if (payload && payload.type === 'close') return closeOffer(payload);
  if (payload && payload.type === 'assigned') return showAssigned(payload);
  const lang = langOf(payload);
  return self.registration.showNotification((payload && payload.title) || say(lang, 'app'), {
    body: (payload && payload.body) || say(lang, 'open_app'),
    tag: (payload && payload.tag) || 'eldercare',
    icon: ICON,
    badge: BADGE,
    lang: lang === 'zh' ? 'zh-CN' : 'en',
    data: payload || { url: '/app/' },
  });
}

async function showOffer(p) {
  const lang = langOf(p);
  const base = {
    body: p.body,
    // `renotify` needs a tag; the server always sends one.
    tag: p.tag || `incident-${p.incident_id}`,
    icon: ICON,
    badge: BADGE,
    lang: lang === 'zh' ? 'zh-CN' : 'en',
    timestamp: Date.now(),
    data: p,
  };
  // Late (its close came first, through another server or a slow push
  // service), or past its time: ringing for an offer nobody can take any
  // more helps nobody.
  if ((await wasClosed(p.offer_id)) || (await hasExpired(p.expires_at))) {
    // Late (a phone that was off, a slow push service): say so, quietly;
    // ringing for an offer nobody can take any more helps nobody.
    return self.registration.showNotification(p.title, {
      ...base,
      body: say(lang, 'expired'),
      silent: true,
      data: { ...p, type: 'expired', url: '/app/' },
    });
  }
  const actions = (Array.isArray(p.actions) ? p.actions : [])
    .filter((a) => a && (a.action === 'accept' || a.action === 'decline') && a.title);
  return self.registration.showNotification(p.title, {
    ...base,
    // Stays on screen until answered, and every repeat alerts again.
    requireInteraction: true,
    renotify: true,
    vibrate: VIBRATE,
    actions: actions.length ? actions : [
      { action: 'accept', title: say(lang, 'accept') },
      { action: 'decline', title: say(lang, 'decline') },
    ],
  });
}

/** The offer ended: the ringing notification goes, and a quiet one says why. */
async function closeOffer(p) {
  await rememberClosed(p.offer_id);
  const tag = p.tag || `incident-${p.incident_id}`;
  for (const n of await self.registration.getNotifications({ tag })) {
    // This offer's notification only: an assignment shown under the
    // same incident stays.
    const d = n.data || {};
    if (!d.offer_id || d.offer_id === p.offer_id) n.close();
  }
  if (justActed(p.offer_id) || !p.title) return;
  await self.registration.showNotification(p.title, {
    body: p.body || '',
    tag,
    icon: ICON,
    badge: BADGE,
    silent: true,
    lang: langOf(p) === 'zh' ? 'zh-CN' : 'en',
    data: { ...p, url: p.url || '/app/' },
  });
}

/** A supervisor assigned this steward an incident: it rings like an offer. */
async function showAssigned(p) {
  const lang = langOf(p);
  return self.registration.showNotification(p.title, {
    body: p.body,
    tag: p.tag || `incident-${p.incident_id}`,
    icon: ICON,
    badge: BADGE,
    lang: lang === 'zh' ? 'zh-CN' : 'en',
    timestamp: Date.now(),
    requireInteraction: true,
    renotify: true,
    vibrate: VIBRATE,
    data: p,
  });
}

// Offers closed lately, kept where the worker finds them after it slept:
// an offer's push that arrives after its close (another server sent it,
// or a push service held it) must not ring.
const CLOSED_KEY = '/app/meta/closed';
const CLOSED_MS = 30 * 60_000;

async function closedOffers() {
  try {
    const res = await (await caches.open(META)).match(CLOSED_KEY);
    const list = res ? await res.json() : [];
    return Array.isArray(list) ? list.filter((c) => Date.now() - c.at < CLOSED_MS) : [];
  } catch {
    return [];
  }
}

async function rememberClosed(offerId) {
  if (!offerId) return;
  const list = (await closedOffers()).filter((c) => c.id !== offerId);
  list.push({ id: offerId, at: Date.now() });
  try {
    await (await caches.open(META)).put(CLOSED_KEY, new Response(JSON.stringify(list.slice(-100)), {
      headers: { 'Content-Type': 'application/json' },
    }));
  } catch { /* memory full: the expiry still stops it */ }
}

async function wasClosed(offerId) {
  return !!offerId && (await closedOffers()).some((c) => c.id === offerId);
}

/** On the server's clock when the app has measured this phone's offset. */
async function hasExpired(expiresAt) {
  const at = Date.parse(expiresAt);
  if (!isFinite(at)) return false;
  return Date.now() + (await serverOffset()) >= at;
}

async function serverOffset() {
  try {
    const res = await (await caches.open(META)).match('/app/meta/clock');
    const skew = res ? (await res.json()).skew : 0;
    return isFinite(skew) ? skew : 0;
  } catch {
    return 0;
  }
}

// Offers this worker answered a moment ago: their `close` push needs no
// notification, the steward knows. Memory is enough: the close follows
// within seconds, while the worker is still awake from the click.
const acted = new Map();
const ACTED_MS = 120_000;

function justActed(offerId) {
  const at = acted.get(offerId);
  return at != null && Date.now() - at < ACTED_MS;
}

// --- clicks ----------------------------------------------------------------

self.addEventListener('notificationclick', (event) => {
  event.waitUntil(handleNotificationClick(event.notification, event.action));
});

/**
 * A tap on a notification (`action` '' ) or on one of its buttons. Accept
 * and Decline answer the offer right here, with the token the push
 * carried; accepting then opens the app at the incident. A refusal (the
 * offer expired, another steward took it) is said in a notification.
 * Returns what happened, for tests: {ok, status, code}.
 */
async function handleNotificationClick(notification, action) {
  const data = notification.data || {};
  notification.close();
  if (data.type === 'offer' && (action === 'accept' || action === 'decline')) {
    const result = await answerOffer(data, action);
    if (result.ok) {
      acted.set(data.offer_id, Date.now());
      if (action === 'accept') await openApp(`/app/#incident=${encodeURIComponent(data.incident_id)}`);
    } else {
      await showRefusal(data, result);
    }
    return result;
  }
  await openApp(data.url || '/app/');
  return { ok: true, status: null, code: null };
}

async function answerOffer(data, action) {
  let res;
  try {
    res = await fetch('/api/v1/offer-actions', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ token: data.token, action }),
    });
  } catch {
    return { ok: false, status: null, code: 'offline' };
  }
  if (res.ok) return { ok: true, status: res.status, code: null };
  let code = 'http_' + res.status;
  let message = res.statusText;
  try {
    const body = await res.json();
    code = (body.error && body.error.code) || code;
    message = (body.error && body.error.message) || message;
  } catch { /* not JSON */ }
  return { ok: false, status: res.status, code, message };
}

async function showRefusal(data, result) {
  const lang = langOf(data);
  const key = ['offer_expired', 'already_taken', 'bad_token', 'offline'].includes(result.code) ? result.code : 'failed';
  await self.registration.showNotification(say(lang, 'not_recorded'), {
    body: say(lang, key, { message: result.message || result.code }),
    tag: data.tag,
    icon: ICON,
    badge: BADGE,
    lang: lang === 'zh' ? 'zh-CN' : 'en',
    data: { type: 'refused', url: `/app/#incident=${encodeURIComponent(data.incident_id)}` },
  });
}

/**
 * Brings the app forward at `url`: an open window is told to go there
 * (no reload, so nothing the steward typed is lost), else a new one opens.
 */
async function openApp(url) {
  const target = new URL(url, self.location.origin).href;
  const windows = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
  const app = windows.find((c) => new URL(c.url).pathname.startsWith('/app/'));
  if (app) {
    app.postMessage({ type: 'navigate', url: target });
    // Focusing needs a tap on the notification; called otherwise, it throws.
    try { await app.focus(); } catch { /* stays in the background */ }
    return;
  }
  try { await self.clients.openWindow(target); } catch { /* no tap: nothing to open with */ }
}

// --- a new subscription from the browser -------------------------------------

self.addEventListener('pushsubscriptionchange', (event) => {
  event.waitUntil(renewSubscription(event.oldSubscription, event.newSubscription));
});

/**
 * The push service replaced this phone's subscription (it expired, or
 * keys rotated). Without a login, the old subscription's auth secret
 * vouches for the new one; if the browser does not say what the old one
 * was, the app re-registers at its next start.
 */
async function renewSubscription(oldSub, newSub) {
  let fresh = newSub;
  if (!fresh) {
    const res = await fetch('/api/v1/push/key');
    if (!res.ok) return;
    const { public_key: key } = await res.json();
    fresh = await self.registration.pushManager.subscribe({
      userVisibleOnly: true,
      applicationServerKey: base64UrlBytes(key),
    });
  }
  if (!oldSub) return;
  const old = oldSub.toJSON();
  await fetch('/api/v1/push/subscriptions/renew', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ old: { endpoint: old.endpoint, keys: { auth: old.keys && old.keys.auth } }, new: fresh.toJSON() }),
  });
}

function base64UrlBytes(s) {
  const b64 = s.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (s.length % 4)) % 4);
  return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
}

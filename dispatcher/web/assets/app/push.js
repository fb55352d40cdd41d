// Alerts on this phone while the app is closed or the phone is locked:
// Web Push through the app's service worker (/app/sw.js). This module
// registers the worker, says plainly whether alerts work here and what
// to do when they do not, subscribes on a tap (browsers ask for the
// permission only from one), keeps the server's copy of the subscription
// current and in the app's language, sends a test alert, and
// unsubscribes the phone at logout.
import { api, ApiError, OfflineError } from '../common/api.js';
import { t, lang, onLangChange } from '../common/i18n.js';
import { h, fill } from '../common/dom.js';

/** The server's record of this phone's subscription: {id, endpoint}. */
const RECORD = 'eldercare.push';
/** Where the worker reads the server clock's offset (see sw.js). */
const META = 'eldercare-meta';
/** How long the service worker may take to start before enabling says it failed. */
const WORKER_PATIENCE_MS = 15_000;

/** Registers the service worker; the app works without it (no alerts, no offline start). */
export function registerWorker() {
  if (!('serviceWorker' in navigator)) return Promise.resolve(null);
  return navigator.serviceWorker.register('/app/sw.js', { scope: '/app/' }).catch(() => null);
}

/** Lets the worker judge an offer's expiry on the server's clock, as the app does. */
export async function saveClockOffset(skew) {
  try {
    const cache = await caches.open(META);
    await cache.put('/app/meta/clock', new Response(JSON.stringify({ skew })));
  } catch { /* no Cache API: the worker uses the phone's clock */ }
}

function isIos() {
  return /iP(hone|ad|od)/.test(navigator.userAgent)
    || (navigator.platform === 'MacIntel' && navigator.maxTouchPoints > 1);
}

/** Why alerts cannot work in this browser, or null when they can. */
function unsupported() {
  if (!window.isSecureContext) return 'insecure';
  const ok = 'serviceWorker' in navigator && 'PushManager' in window && 'Notification' in window;
  if (ok) return null;
  // Safari on an iPhone has Web Push only for an app on the home screen.
  return isIos() ? 'ios' : 'unsupported';
}

function keyBytes(b64url) {
  const b64 = b64url.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (b64url.length % 4)) % 4);
  return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
}

function sameKey(sub, bytes) {
  const had = sub.options?.applicationServerKey;
  if (!had) return true; // the browser does not say: trust it
  const a = new Uint8Array(had);
  return a.length === bytes.length && a.every((x, i) => x === bytes[i]);
}

/**
 * The alert control under the duty switch.
 * @param {HTMLElement} root
 * @param {{onChange:()=>void}} hooks `onChange` after alerts turn on or off
 */
export function initPush(root, { onChange }) {
  /** checking | insecure | ios | unsupported | unavailable | denied | off | enabling | on | refused | failed */
  let status = 'checking';
  let detail = '';
  let testing = false;
  let result = null; // {text, cls} of the last test alert
  let pendingSync = false;

  function set(s, d = '') {
    const wasOn = status === 'on';
    status = s;
    detail = d;
    render();
    if (wasOn !== (s === 'on')) onChange();
  }

  function render() {
    const line = {
      checking: ['push.checking', 'muted'],
      insecure: ['push.insecure', 'warn'],
      ios: ['push.ios', 'warn'],
      unsupported: ['push.unsupported', 'warn'],
      unavailable: ['push.unavailable', 'warn'],
      denied: ['push.denied', 'warn'],
      off: ['push.off', 'warn'],
      enabling: ['push.checking', 'muted'],
      on: ['push.on', 'ok'],
      refused: ['push.refused', 'warn'],
      failed: ['push.failed', 'warn'],
    }[status];
    let button = null;
    if (status === 'off' || status === 'enabling' || status === 'refused' || status === 'failed') {
      button = h('button', {
        type: 'button', class: 'primary push-enable', disabled: status === 'enabling',
        onclick: () => enable(),
      }, t(status === 'enabling' ? 'push.enabling' : status === 'off' ? 'push.enable' : 'push.retry'));
    } else if (status === 'on') {
      button = h('button', { type: 'button', class: 'push-test', disabled: testing, onclick: () => test() },
        t(testing ? 'push.testing' : 'push.test'));
    }
    fill(root,
      h('p', { class: 'push-state ' + line[1], dataset: { state: status } }, t(line[0], { message: detail })),
      button,
      result ? h('p', { class: 'push-result ' + result.cls, role: 'status' }, result.text) : null);
  }

  /** The active worker's registration; a worker that never starts is an error, not a hang. */
  async function registration() {
    await registerWorker();
    let timer;
    const late = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(t('push.no_worker'))), WORKER_PATIENCE_MS);
    });
    try {
      return await Promise.race([navigator.serviceWorker.ready, late]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Tells the server about this phone's subscription (new, or again in the current language). */
  async function send(sub) {
    const r = await api('POST', '/push/subscriptions', { ...sub.toJSON(), lang: lang() });
    localStorage.setItem(RECORD, JSON.stringify({ id: r.id, endpoint: r.endpoint }));
    pendingSync = false;
  }

  function refusal(err) {
    if (err instanceof ApiError && err.code === 'too_many_subscriptions') return t('push.too_many');
    return err.message || String(err);
  }

  /** From a tap: permission, subscription, and the server's copy of it. */
  async function enable(ask = true) {
    result = null;
    set('enabling');
    try {
      const permission = ask ? await Notification.requestPermission() : Notification.permission;
      if (permission === 'denied') { set('denied'); return; }
      if (permission !== 'granted') { set('off'); return; }
      const { public_key: key } = await api('GET', '/push/key');
      const bytes = keyBytes(key);
      const reg = await registration();
      let sub = await reg.pushManager.getSubscription();
      // The server's key changed (a new VAPID key): the old subscription is useless.
      if (sub && !sameKey(sub, bytes)) { await sub.unsubscribe(); sub = null; }
      if (!sub) sub = await reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: bytes });
      await send(sub);
      set('on');
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) set('unavailable');
      else if (err instanceof ApiError) set('refused', refusal(err));
      else if (err instanceof OfflineError) {
        set('off');
        // At start nobody tapped: just try again when the line is back.
        if (ask) { result = { text: t('err.offline'), cls: 'warn' }; render(); } else pendingSync = true;
      }
      else set('failed', err?.message || String(err));
    }
  }

  /** At every start: what this browser allows, and the server brought up to date. */
  async function start() {
    const why = unsupported();
    registerWorker();
    if (why) { set(why); return; }
    if (Notification.permission === 'denied') { set('denied'); return; }
    if (Notification.permission !== 'granted') { set('off'); return; }
    let sub = null;
    try {
      sub = await (await registration()).pushManager.getSubscription();
    } catch { /* treated as none */ }
    // Permission without a (usable) subscription (cleared data, a new
    // worker, a new server key): subscribing again needs no tap.
    if (!sub || await keyChanged(sub)) { await enable(false); return; }
    set('on');
    await sync(sub);
  }

  /** The server signs with a new key (VAPID): pushes to the old subscription would be refused. */
  async function keyChanged(sub) {
    try {
      const { public_key: key } = await api('GET', '/push/key');
      return !sameKey(sub, keyBytes(key));
    } catch {
      return false; // unknown: keep what works
    }
  }

  async function sync(sub) {
    try {
      await send(sub);
      if (status !== 'on') set('on');
    } catch (err) {
      if (err instanceof OfflineError) pendingSync = true; // again when the line is back
      else if (err instanceof ApiError && err.status === 404) set('unavailable');
      else if (err instanceof ApiError) set('refused', refusal(err));
    }
  }

  async function current() {
    if (status !== 'on') return null;
    try {
      return await (await registration()).pushManager.getSubscription();
    } catch {
      return null;
    }
  }

  async function test() {
    testing = true;
    result = null;
    render();
    try {
      const r = await api('POST', '/push/test');
      const results = r.results ?? [];
      const ok = results.filter((x) => x.ok).length;
      const error = results.find((x) => !x.ok)?.error ?? '';
      if (ok && ok === results.length) result = { text: t('push.test_sent', { n: ok }), cls: 'ok' };
      else if (ok) result = { text: t('push.test_partial', { ok, n: results.length, error }), cls: 'warn' };
      else result = { text: t('push.test_failed', { error: error || '–' }), cls: 'warn' };
    } catch (err) {
      if (err instanceof ApiError && err.code === 'no_subscription') {
        result = { text: t('push.test_none'), cls: 'warn' };
        const sub = await current();
        if (sub) sync(sub);
      } else if (err instanceof OfflineError) {
        result = { text: t('err.offline'), cls: 'warn' };
      } else {
        result = { text: t('push.test_failed', { error: err.message }), cls: 'warn' };
      }
    } finally {
      testing = false;
      render();
    }
  }

  /** At logout: this phone should not ring for a steward who left it. Best effort. */
  async function forget() {
    const work = (async () => {
      const record = JSON.parse(localStorage.getItem(RECORD) ?? 'null');
      const reg = 'serviceWorker' in navigator ? await navigator.serviceWorker.getRegistration('/app/') : null;
      const sub = await reg?.pushManager?.getSubscription();
      let id = record && (!sub || record.endpoint === sub.endpoint) ? record.id : null;
      if (!id && sub) id = (await api('GET', '/push/subscriptions')).find((s) => s.endpoint === sub.endpoint)?.id;
      if (id) await api('DELETE', `/push/subscriptions/${encodeURIComponent(id)}`).catch(() => {});
      if (sub) await sub.unsubscribe();
    })().catch(() => {});
    // Offline, logging out must not wait for the network.
    await Promise.race([work, new Promise((r) => setTimeout(r, 4000))]);
    localStorage.removeItem(RECORD);
  }

  onLangChange(async () => {
    render();
    // Lock-screen texts are written by the server in the language it was told.
    const sub = await current();
    if (sub) sync(sub);
  });

  start();
  return {
    isOn: () => status === 'on',
    forget,
    /** The line is back: what failed offline is tried again. */
    async retry() {
      if (!pendingSync) return;
      pendingSync = false;
      if (status !== 'on') { if (Notification.permission === 'granted') enable(false); return; }
      const sub = await current();
      if (sub) sync(sub);
    },
  };
}

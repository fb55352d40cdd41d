// Sharing the steward's position while on duty: the phone's fixes go to
// PUT /stewards/{id}/location, at most every 30 s unless they moved
// 50 m, and at least every 4 min (the dispatcher distrusts locations
// older than 15 min). A refused permission or a missing GPS fix is
// reported, and the app keeps working without it.
import { api } from '../common/api.js';

const MIN_INTERVAL_MS = 30_000;
const MIN_MOVE_M = 50;
const REFRESH_MS = 240_000;

/**
 * @param {string} stewardId
 * @param {(s:{state:'off'|'waiting'|'shared'|'denied'|'unavailable'|'unsupported'|'send_failed', at?:number, accuracy?:number})=>void} onStatus
 */
export function locationSharer(stewardId, onStatus) {
  let watch = null;
  let timer = null;
  let last = null; // {lat, lon, at} last sent
  let pending = null; // newest fix not yet sent
  let sending = false;

  const geo = navigator.geolocation;
  const supported = !!geo && window.isSecureContext !== false;

  async function send(force) {
    if (!pending || sending) return;
    const p = pending;
    const now = Date.now();
    if (!force && last && now - last.at < MIN_INTERVAL_MS && metres(last, p) < MIN_MOVE_M) return;
    sending = true;
    try {
      const body = { lat: p.lat, lon: p.lon };
      if (isFinite(p.accuracy)) body.accuracy_m = Math.round(p.accuracy);
      await api('PUT', `/stewards/${encodeURIComponent(stewardId)}/location`, body);
      last = { ...p, at: Date.now() };
      if (pending === p) pending = null;
      onStatus({ state: 'shared', at: last.at, accuracy: p.accuracy });
    } catch {
      onStatus({ state: 'send_failed' });
    } finally {
      sending = false;
    }
  }

  function fix(pos) {
    pending = { lat: pos.coords.latitude, lon: pos.coords.longitude, accuracy: pos.coords.accuracy };
    send(false);
  }

  function failed(err) {
    onStatus({ state: err.code === 1 ? 'denied' : 'unavailable' });
  }

  function refresh() {
    // A phone standing still may not report: ask once, and resend what we have.
    if (pending) { send(true); return; }
    if (last && Date.now() - last.at < REFRESH_MS) return;
    geo.getCurrentPosition((pos) => {
      pending = { lat: pos.coords.latitude, lon: pos.coords.longitude, accuracy: pos.coords.accuracy };
      send(true);
    }, failed, { enableHighAccuracy: true, maximumAge: 60_000, timeout: 60_000 });
  }

  return {
    start() {
      if (!supported) { onStatus({ state: 'unsupported' }); return; }
      if (watch != null) return;
      onStatus({ state: 'waiting' });
      last = null;
      watch = geo.watchPosition(fix, failed, { enableHighAccuracy: true, maximumAge: 30_000, timeout: 60_000 });
      timer = setInterval(refresh, 30_000);
    },
    stop() {
      if (watch != null) geo.clearWatch(watch);
      clearInterval(timer);
      watch = null;
      timer = null;
      pending = null;
      onStatus({ state: 'off' });
    },
  };
}

/** Metres between two points (equirectangular: plenty at these distances). */
function metres(a, b) {
  const r = 6_371_000;
  const x = ((b.lon - a.lon) * Math.PI / 180) * Math.cos(((a.lat + b.lat) / 2) * Math.PI / 180);
  const y = (b.lat - a.lat) * Math.PI / 180;
  return Math.hypot(x, y) * r;
}

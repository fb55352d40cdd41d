// The live stream (API.md "Stream"): Server-Sent Events with the token in
// the query, since EventSource cannot set headers. EventSource reconnects
// by itself and sends Last-Event-ID, so the server replays what was
// missed; we only report the connection state so a page can say plainly
// when it is offline.
import { session, toLogin } from './session.js';

const EVENTS = ['snapshot', 'offer', 'offer.withdrawn', 'incident', 'steward'];

/**
 * @param {(name:string, data:any, id:string)=>void} onEvent
 * @param {(state:'connecting'|'live'|'offline')=>void} onState
 * @returns {{close:()=>void}}
 */
export function openStream(onEvent, onState = () => {}) {
  const s = session();
  if (!s) { toLogin(); return { close() {} }; }
  let es;
  let closed = false;
  let lastId = null;
  let retry = null;
  const connect = () => {
    onState('connecting');
    let url = '/api/v1/stream?access_token=' + encodeURIComponent(s.token);
    // A fresh EventSource (after a failed one) forgets the last id.
    if (lastId) url += '&last_event_id=' + encodeURIComponent(lastId);
    es = new EventSource(url);
    es.onopen = () => onState('live');
    es.onerror = () => {
      onState('offline');
      // CLOSED means the server refused (401, 503): the browser will not
      // retry by itself, so we do, slowly.
      if (es.readyState === EventSource.CLOSED && !closed) {
        clearTimeout(retry);
        retry = setTimeout(async () => {
          if (await sessionRejected()) { toLogin(); return; }
          connect();
        }, 3000);
      }
    };
    for (const name of EVENTS) {
      es.addEventListener(name, (m) => {
        if (m.lastEventId) lastId = m.lastEventId;
        let data;
        try { data = JSON.parse(m.data); } catch { return; }
        onEvent(name, data, m.lastEventId);
      });
    }
  };
  connect();
  return { close() { closed = true; clearTimeout(retry); es?.close(); } };
}

async function sessionRejected() {
  const s = session();
  if (!s) return true;
  try {
    const r = await fetch('/api/v1/auth/me', { headers: { Authorization: 'Bearer ' + s.token } });
    return r.status === 401;
  } catch {
    return false;
  }
}

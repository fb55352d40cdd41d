// Building elements without innerHTML, for the board and the steward app:
// every value from the API is text, never markup (names and notes are
// typed by people).

/**
 * h('button', {class: 'x', onclick: f, 'aria-label': '…'}, 'text', child…)
 * Attributes: `class`, `text`, `dataset` (object), `on<event>` (function),
 * booleans (true sets, false omits), anything else via setAttribute.
 */
export function h(tag, attrs = {}, ...children) {
  const el = tag.startsWith('svg:')
    ? document.createElementNS('http://www.w3.org/2000/svg', tag.slice(4))
    : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v == null || v === false) continue;
    if (k === 'class') el.setAttribute('class', v);
    else if (k === 'text') el.textContent = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'value' && 'value' in el) el.value = v;
    else if (k === 'checked' && 'checked' in el) el.checked = !!v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c == null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** Replaces the children of `el`. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** Saves a Blob as a file, through a temporary link. */
export function download(blob, name) {
  const url = URL.createObjectURL(blob);
  const a = h('a', { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

/** A `lang` for text in Tibetan script, so it is shaped by a Tibetan font. */
export function scriptLang(text) {
  if (/[\u0F00-\u0FFF]/.test(text ?? '')) return 'bo';
  if (/[\u3400-\u9FFF]/.test(text ?? '')) return 'zh-CN';
  return null;
}

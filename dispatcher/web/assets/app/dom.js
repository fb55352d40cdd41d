// Building DOM without innerHTML: names, notes and addresses come from
// people and are always text, never markup.

/**
 * h('button', {class: 'primary', onclick: f}, 'Accept')
 * Attributes starting with "on" are listeners; `null`/`false` are skipped;
 * children may be strings, nodes, arrays or null.
 */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v == null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
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

/** A `lang` for text in Tibetan script, so it is shaped by a Tibetan font. */
export function scriptLang(text) {
  if (/[\u0F00-\u0FFF]/.test(text ?? '')) return 'bo';
  if (/[\u3400-\u9FFF]/.test(text ?? '')) return 'zh-CN';
  return null;
}

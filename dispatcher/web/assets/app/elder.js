// What a steward needs to know about the elder they go to: who, where,
// how to get there, what to watch for and whom to call.
import { t } from '../common/i18n.js';
import { h, scriptLang } from '../common/dom.js';

export function age(elder) {
  return elder?.birth_year ? new Date().getFullYear() - elder.birth_year : null;
}

export function distance(m) {
  if (m == null || !isFinite(m)) return '–';
  if (m < 1000) return t('dist.m', { n: Math.round(m / 10) * 10 });
  return t('dist.km', { n: (m / 1000).toFixed(1) });
}

/** The elder's name and age as the card's heading. */
export function nameLine(elder, tag = 'h2') {
  const name = elder?.name ?? t('elder.unknown');
  const a = age(elder);
  return h(tag, { class: 'elder-name' },
    h('span', { lang: scriptLang(name) }, name),
    a != null ? h('span', { class: 'elder-age' }, ' · ' + t('elder.age', { n: a })) : null);
}

/**
 * Links that hand the home's position to the phone's navigation app
 * (`geo:`) and to a web map; no script from elsewhere is loaded.
 */
export function navLinks(elder) {
  if (elder?.lat == null || elder?.lon == null) return null;
  const { lat, lon } = elder;
  const label = encodeURIComponent(elder.name ?? '');
  return h('div', { class: 'nav' },
    h('a', { class: 'button-link nav-go', href: `geo:${lat},${lon}?q=${lat},${lon}(${label})` }, t('nav.go')),
    h('a', {
      class: 'button-link',
      href: `https://www.openstreetmap.org/?mlat=${lat}&mlon=${lon}#map=18/${lat}/${lon}`,
      target: '_blank',
      rel: 'noopener noreferrer',
    }, t('nav.map')));
}

export function address(elder) {
  if (!elder?.address) return null;
  return h('p', { class: 'address' },
    h('span', { class: 'sr-only' }, t('elder.address') + ': '),
    h('span', { lang: scriptLang(elder.address) }, elder.address));
}

function list(items) {
  if (!items?.length) return h('span', { class: 'muted' }, t('elder.none'));
  return items.map((x, i) => [i ? t('list.sep_long') : '', h('span', { lang: scriptLang(x) }, x)]);
}

/** Conditions, medications, risks, contacts with tel: links, notes. */
export function essentials(elder) {
  if (!elder) return null;
  const risks = [];
  if (elder.risks?.fall) risks.push(t('elder.risk_fall'));
  if (elder.risks?.wandering) risks.push(t('elder.risk_wandering'));
  const row = (label, value, cls) => [h('dt', null, label), h('dd', { class: cls }, value)];
  return h('dl', { class: 'essentials' },
    row(t('elder.conditions'), list(elder.conditions)),
    row(t('elder.medications'), list(elder.medications)),
    risks.length || elder.lives_alone
      ? row(t('elder.risks'), [risks.join(t('list.sep')), elder.lives_alone ? (risks.length ? ' · ' : '') + t('elder.lives_alone') : ''], 'risks')
      : null,
    elder.contacts?.length
      ? row(t('elder.contacts'), h('ul', { class: 'contacts' }, elder.contacts.map((c) =>
        h('li', null,
          h('span', { lang: scriptLang(c.name) }, c.name),
          c.relation ? h('span', { class: 'muted' }, ` (${c.relation})`) : null,
          ' ',
          h('a', { class: 'tel', href: 'tel:' + c.phone.replace(/[^\d+]/g, '') }, c.phone)))))
      : null,
    elder.notes ? row(t('elder.notes'), h('span', { lang: scriptLang(elder.notes) }, elder.notes)) : null);
}

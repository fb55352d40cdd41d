// An offer as a big card: what happened, to whom, how far, how long to
// answer, and two big buttons. The countdown is updated by `tickOffers`.
import { t, duration } from '../common/i18n.js';
import { h } from '../common/dom.js';
import { nameLine, address, navLinks, essentials, distance } from './elder.js';

/**
 * @param {{incident:any, elder:any, distance_m:number|null, expires_at:string}} offer
 * @param {{accept:(id:string)=>void, decline:(id:string)=>void}} actions
 */
export function offerCard(offer, actions) {
  const inc = offer.incident;
  const id = inc.id;
  return h('article', {
    class: `card offer prio-${inc.priority}`,
    'data-incident': id,
    'aria-labelledby': `offer-title-${id}`,
  },
  h('header', { class: 'card-head' },
    h('span', { class: `badge prio-bg-${inc.priority}` }, t('prio.' + inc.priority)),
    h('span', { class: 'kind', id: `offer-title-${id}` }, t('offer.new', { kind: t('kind.' + inc.kind) })),
  ),
  h('div', { class: 'countdown', 'data-expires': offer.expires_at, role: 'timer' },
    h('span', { class: 'countdown-value' }, '–'),
    h('span', { class: 'countdown-label' }, ' ' + t('offer.left'))),
  nameLine(offer.elder),
  h('p', { class: 'distance' }, t('offer.away', { d: distance(offer.distance_m) }),
    inc.escalation_level > 0 ? h('span', { class: 'muted' }, ' · ' + t('offer.escalated', { n: inc.escalation_level })) : null),
  inc.summary ? h('p', { class: 'summary' }, inc.summary) : null,
  address(offer.elder),
  h('div', { class: 'actions' },
    h('button', { type: 'button', class: 'primary big accept', onclick: () => actions.accept(id) }, t('offer.accept')),
    h('button', { type: 'button', class: 'big decline', onclick: () => actions.decline(id) }, t('offer.decline'))),
  navLinks(offer.elder),
  essentials(offer.elder));
}

/** Updates every countdown on the page; `now` is the server's time in ms. */
export function tickOffers(root, now) {
  for (const el of root.querySelectorAll('.countdown[data-expires]')) {
    const left = (Date.parse(el.dataset.expires) - now) / 1000;
    const value = el.querySelector('.countdown-value');
    const label = el.querySelector('.countdown-label');
    if (left > 0) {
      value.textContent = duration(Math.ceil(left));
      label.textContent = ' ' + t('offer.left');
      el.classList.toggle('soon', left <= 10);
    } else {
      value.textContent = t('offer.time_up');
      label.textContent = '';
      el.classList.add('soon');
    }
  }
}

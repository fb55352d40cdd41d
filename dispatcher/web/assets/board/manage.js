// Managing elders, devices and stewards: a list of each and a form to
// create or edit one. The API validates; its message is shown as is.
// A device's secret (its MQTT password) is shown once, when it is
// registered or a new one is issued: the installer copies it then.
import { api } from '../common/api.js';
import { t } from '../common/i18n.js';
import { h, fill } from '../common/dom.js';
import { loadElders } from './state.js';

const KINDS = ['call_button', 'pendant', 'pull_cord', 'bed_sensor', 'fall_radar', 'vitals_pad', 'smoke', 'door', 'gateway', 'other'];

const lines = { read: (v) => (v ?? []).join('\n'), write: (s) => s.split('\n').map((x) => x.trim()).filter(Boolean) };
// A blank field is null: no elder bound, no paired steward.
const orNull = { read: (v) => v ?? '', write: (s) => s.trim() || null };
const commas = { read: (v) => (v ?? []).join(', '), write: (s) => s.split(/[,，]/).map((x) => x.trim()).filter(Boolean) };
const contacts = {
  read: (v) => (v ?? []).map((c) => `${c.name}, ${c.relation}, ${c.phone}`).join('\n'),
  write: (s) => lines.write(s).map((l) => {
    const [name = '', relation = '', phone = ''] = l.split(/[,，]/).map((x) => x.trim());
    return { name, relation, phone };
  }),
};

/**
 * Each resource: its path, list columns, and form fields
 * [key, label, input kind, codec]. `id` is only sent on create.
 */
const RESOURCES = {
  elders: {
    path: '/elders', title: 'man.elders',
    columns: [['id', 'col.id'], ['name', 'col.name'], ['grid', 'col.grid'], ['address', 'f.address']],
    fields: [
      ['id', 'f.id', 'text'], ['name', 'f.name', 'text', null, true], ['birth_year', 'f.birth_year', 'number', null, true],
      ['address', 'f.address', 'text', null, true], ['lat', 'f.lat', 'decimal', null, true], ['lon', 'f.lon', 'decimal', null, true],
      ['grid', 'f.grid', 'text'], ['conditions', 'f.conditions', 'textarea', lines, false, 'man.list_hint'],
      ['medications', 'f.medications', 'textarea', lines, false, 'man.list_hint'],
      ['risks.fall', 'f.risk_fall', 'checkbox'], ['risks.wandering', 'f.risk_wandering', 'checkbox'],
      ['lives_alone', 'f.lives_alone', 'checkbox'], ['languages', 'f.languages', 'text', commas, false, 'man.comma_hint'],
      ['contacts', 'f.contacts', 'textarea', contacts, false, 'man.contacts_hint'], ['notes', 'f.notes', 'textarea'],
      // The care plan: blank is the default (visits by risk, no check-in, the grid's steward).
      ['care.on_watch', 'f.care_on_watch', 'checkbox'],
      ['care.visit_every_days', 'f.care_every', 'number', null, false, 'man.care_every_hint'],
      ['care.checkin.by', 'f.care_checkin_by', 'text', null, false, 'man.care_checkin_hint'],
      ['care.steward_id', 'f.care_steward', 'text', orNull, false, 'man.care_steward_hint'],
    ],
  },
  devices: {
    path: '/devices', title: 'man.devices', secrets: true,
    columns: [['id', 'col.id'], ['elder_id', 'f.elder_id'], ['kind', 'col.kind']],
    fields: [
      ['id', 'f.device_id', 'text', null, true], ['elder_id', 'f.elder_id', 'text', orNull],
      ['kind', 'f.kind', 'select', null, true, null, KINDS], ['heartbeat_s', 'f.heartbeat_s', 'number'],
    ],
  },
  stewards: {
    path: '/stewards', title: 'man.stewards',
    columns: [['id', 'col.id'], ['name', 'col.name'], ['phone', 'col.phone'], ['grid', 'col.grid']],
    fields: [
      ['id', 'f.id', 'text'], ['name', 'f.name', 'text', null, true], ['phone', 'f.phone', 'text', null, true],
      ['grid', 'f.grid', 'text'], ['skills', 'f.skills', 'text', commas, false, 'man.comma_hint'],
      ['languages', 'f.languages', 'text', commas, false, 'man.comma_hint'],
    ],
  },
  // Where each grid belongs (admins): saved with PUT of a one-area list.
  areas: {
    path: '/areas', title: 'man.areas', key: 'grid', put: true,
    columns: [['grid', 'col.grid'], ['community', 'f.community'], ['district', 'f.district']],
    fields: [
      ['grid', 'f.grid', 'text', null, true], ['community', 'f.community', 'text', null, true],
      ['district', 'f.district', 'text'],
    ],
  },
};

const get = (o, k) => k.split('.').reduce((v, p) => v?.[p], o);
function set(o, k, v) {
  const parts = k.split('.');
  const last = parts.pop();
  let cur = o;
  for (const p of parts) cur = cur[p] ??= {};
  cur[last] = v;
}

export async function showManage(root, sub) {
  const which = RESOURCES[sub] ? sub : 'elders';
  const res = RESOURCES[which];
  const tabs = h('nav', { class: 'subnav', 'aria-label': t('man.title') }, Object.entries(RESOURCES).map(([k, r]) =>
    h('a', { href: '#manage/' + k, 'aria-current': k === which ? 'page' : null, text: t(r.title) })));
  const formBox = h('div', { id: 'manage-form' });
  const listBox = h('div', {}, h('p', { class: 'muted', text: t('loading') }));
  fill(root, h('h2', { text: t('man.title') }), tabs,
    h('p', {}, h('button', { type: 'button', class: 'primary', id: 'manage-new', text: `+ ${t('man.new')}`, onclick: () => openForm(formBox, res, null, reload) })),
    formBox, listBox);
  async function reload() {
    try {
      const items = await api('GET', res.path);
      fill(listBox, h('div', { class: 'table-wrap' }, h('table', { id: 'manage-list' },
        h('thead', {}, h('tr', {}, res.columns.map(([, l]) => h('th', { scope: 'col', text: t(l) })), h('th', { scope: 'col', text: t('col.actions') }))),
        h('tbody', {}, items.map((item) => h('tr', {},
          res.columns.map(([k], n) => (n === 0 ? h('th', { scope: 'row', text: get(item, k) ?? '–' }) : h('td', { text: get(item, k) ?? '–' }))),
          h('td', {}, h('button', { type: 'button', text: t('man.edit'), onclick: () => openForm(formBox, res, item, reload) }))))))));
    } catch (e) {
      fill(listBox, h('p', { class: 'error-text', role: 'alert', text: t('err.load', { message: e.message }) }));
    }
  }
  reload();
}

function openForm(box, res, item, reload) {
  const editing = !!item;
  const key = res.key ?? 'id';
  const inputs = {};
  const status = h('p', { role: 'status', 'aria-live': 'polite' });
  const fields = res.fields.filter(([k]) => !(editing && k === key)).map(([key, labelKey, kind, codec, required, hint, options]) => {
    const id = 'mf-' + key.replaceAll('.', '-');
    const value = item ? get(item, key) : undefined;
    let input;
    if (kind === 'checkbox') input = h('input', { type: 'checkbox', id, checked: !!value });
    else if (kind === 'textarea') input = h('textarea', { id, rows: 3 });
    else if (kind === 'select') input = h('select', { id, required }, options.map((o) => h('option', { value: o, text: o, selected: o === value })));
    else input = h('input', { id, required, type: kind === 'text' ? 'text' : 'number', step: kind === 'decimal' ? 'any' : null, inputmode: kind === 'decimal' ? 'decimal' : null });
    if (kind !== 'checkbox' && kind !== 'select') input.value = codec ? codec.read(value) : value ?? '';
    inputs[key] = { input, kind, codec };
    const wrapClass = kind === 'checkbox' ? 'field check' : 'field';
    return kind === 'checkbox'
      ? h('div', { class: wrapClass }, input, h('label', { for: id, text: t(labelKey) }))
      : h('div', { class: wrapClass }, h('label', { for: id, text: t(labelKey) }), input, hint ? h('small', { class: 'muted', text: t(hint) }) : null);
  });
  const submit = async (e) => {
    e.preventDefault();
    const body = {};
    for (const [key, { input, kind, codec }] of Object.entries(inputs)) {
      let v;
      if (kind === 'checkbox') v = input.checked;
      else if (kind === 'number' || kind === 'decimal') v = input.value === '' ? null : Number(input.value);
      else v = codec ? codec.write(input.value) : input.value.trim();
      if (key === 'id' && v === '') continue;
      // A blank check-in time takes the elder off check-in.
      if (key === 'care.checkin.by') {
        if (v !== '') set(body, key, v);
        else if (editing) set(body, 'care.checkin', null);
        continue;
      }
      if (v === null && !editing) continue;
      set(body, key, v);
    }
    if (editing && res.put) body[key] = item[key];
    try {
      const saved = res.put
        ? await api('PUT', res.path, [body])
        : editing
          ? await api('PATCH', `${res.path}/${encodeURIComponent(item[key])}`, body)
          : await api('POST', res.path, body);
      status.className = '';
      status.textContent = t('man.saved');
      if (!editing && saved?.secret) fill(secretBox, secretPanel(saved.id, saved.secret));
      reload();
      if (res.path === '/elders') loadElders();
      if (!editing) form.reset();
    } catch (err) {
      status.className = 'error-text';
      status.textContent = t('common.error', { message: err.message });
    }
  };
  const secretBox = h('div', { id: 'device-secret-box' });
  const secretActions = editing && res.secrets ? secretButtons(item.id, secretBox, status) : null;
  const form = h('form', { class: 'panel manage-form', onsubmit: submit },
    h('h3', { text: editing ? t('man.edit_title', { id: item[key] }) : t('man.create_title') }),
    h('div', { class: 'fields' }, fields),
    h('p', { class: 'buttons' },
      h('button', { type: 'submit', class: 'primary', text: t('man.save') }),
      secretActions,
      h('button', { type: 'button', text: t('man.close'), onclick: () => fill(box) })),
    status, secretBox);
  fill(box, form);
  form.querySelector('input, select, textarea')?.focus();
}

/** A new secret, shown this once, with what to do with it. */
function secretPanel(id, secret) {
  const value = h('code', { id: 'device-secret', class: 'secret', text: secret });
  const copied = h('span', { role: 'status', 'aria-live': 'polite' });
  return h('section', { class: 'panel secret-panel', role: 'alert' },
    h('h3', { text: t('man.secret_title', { id }) }),
    h('p', { text: t('man.secret_once') }),
    h('p', {}, value, ' ', h('button', {
      type: 'button', text: t('man.copy'),
      onclick: async () => {
        try { await navigator.clipboard.writeText(secret); copied.textContent = t('man.copied'); }
        catch { getSelection().selectAllChildren(value); copied.textContent = t('man.copy_by_hand'); }
      },
    }), ' ', copied),
    h('p', { class: 'muted', text: t('man.secret_how', { id }) }));
}

/** Issue a new secret, or revoke the current one, after a confirmation. */
function secretButtons(id, secretBox, status) {
  const path = `/devices/${encodeURIComponent(id)}/secret`;
  const act = async (question, method, done) => {
    if (!confirm(question)) return;
    try {
      const answer = await api(method, path);
      status.className = '';
      status.textContent = done;
      fill(secretBox, answer?.secret ? secretPanel(id, answer.secret) : null);
    } catch (err) {
      status.className = 'error-text';
      status.textContent = t('common.error', { message: err.message });
    }
  };
  return [
    h('button', { type: 'button', id: 'device-rotate', text: t('man.rotate'),
      onclick: () => act(t('man.rotate_confirm', { id }), 'POST', t('man.rotated')) }),
    h('button', { type: 'button', id: 'device-revoke', class: 'danger', text: t('man.revoke'),
      onclick: () => act(t('man.revoke_confirm', { id }), 'DELETE', t('man.revoked')) }),
  ];
}

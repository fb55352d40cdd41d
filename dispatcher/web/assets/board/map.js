// The map: homes, open incidents and stewards by status, drawn with the
// bundled Leaflet. Without a tile server (the default: a site may have no
// internet) positions are shown to scale on a plain background with a
// scale bar; with `http.map_tile_url` set, on the operator's tiles.
import { t } from '../common/i18n.js';
import { h, fill } from '../common/dom.js';
import { state, subscribe, elderName, stewardName } from './state.js';
import { label } from './incidents.js';

const STEWARD_COLOURS = { available: '#1f6f3d', offered: '#8a5a00', busy: '#0b5cad', off_duty: '#6b7280' };
const PRIORITY_COLOURS = { critical: '#b00020', urgent: '#b34700', routine: '#1f6f3d', technical: '#4a5260' };

let map = null;
let layers = null;
let legend;
let tiles = null;
let fitted = false;

export function initMap(el, legendEl) {
  legend = legendEl;
  if (!window.L) return; // the library failed to load: the board still works
  map = L.map(el, { zoomSnap: 0.25, attributionControl: false, preferCanvas: true });
  map.setView([29.66, 91.14], 14);
  L.control.scale({ imperial: false, maxWidth: 160 }).addTo(map);
  layers = { homes: L.layerGroup().addTo(map), stewards: L.layerGroup().addTo(map), incidents: L.layerGroup().addTo(map) };
  subscribe((what) => {
    if (['incidents', 'stewards', 'elders', 'lang'].includes(what)) draw();
    if (what === 'config') useTiles();
    if (what === 'layout') showMap();
  });
  draw();
}

/** Call when the map's view is shown: Leaflet measures its box. */
export function showMap() {
  if (map) setTimeout(() => { map.invalidateSize(); if (!fitted) draw(); }, 0);
}

function useTiles() {
  const url = state.config.map_tile_url;
  if (!map || !url || tiles) return;
  tiles = L.tileLayer(url, { maxZoom: 19 }).addTo(map);
  map.getContainer().classList.add('with-tiles');
}

function draw() {
  if (!map) return;
  renderLegend();
  for (const g of Object.values(layers)) g.clearLayers();
  const points = [];
  for (const e of state.elders.values()) {
    if (e.lat == null) continue;
    L.circleMarker([e.lat, e.lon], { radius: 4, color: '#4a5260', weight: 1, fillColor: '#ffffff', fillOpacity: 1 })
      .bindTooltip(tip(e.name)).addTo(layers.homes);
    points.push([e.lat, e.lon]);
  }
  for (const s of state.stewards.values()) {
    if (s.lat == null) continue;
    const colour = STEWARD_COLOURS[s.status] ?? '#6b7280';
    L.circleMarker([s.lat, s.lon], { radius: 7, color: '#ffffff', weight: 2, fillColor: colour, fillOpacity: 1 })
      .bindTooltip(tip(`${s.name} · ${label('status', s.status)}`)).addTo(layers.stewards);
    points.push([s.lat, s.lon]);
  }
  for (const i of state.incidents.values()) {
    const e = state.elders.get(i.elder_id);
    if (!e || e.lat == null) continue;
    const colour = PRIORITY_COLOURS[i.priority] ?? '#b00020';
    const m = L.circleMarker([e.lat, e.lon], { radius: 11, color: colour, weight: 3, fillColor: colour, fillOpacity: 0.35 })
      .bindTooltip(tip(`${elderName(i.elder_id)} · ${label('kind', i.kind)} · ${label('state', i.status)}` +
        (i.steward_id ? ` · ${stewardName(i.steward_id)}` : '')))
      .addTo(layers.incidents);
    m.on('click', () => { location.hash = '#incident/' + encodeURIComponent(i.id); });
  }
  // What is drawn, for a test or a curious operator: the canvas keeps no
  // element per marker.
  const box = map.getContainer();
  box.dataset.homes = String(layers.homes.getLayers().length);
  box.dataset.stewards = String(layers.stewards.getLayers().length);
  box.dataset.incidents = String(layers.incidents.getLayers().length);
  // Fit once, when there is something to fit and a box to fit it in.
  if (!fitted && points.length && map.getContainer().clientWidth > 0) {
    map.fitBounds(points, { padding: [20, 20], maxZoom: 16 });
    fitted = true;
  }
}

/**
 * A tooltip's content as an element: Leaflet puts a string into the page
 * as HTML (innerHTML), and names are typed by people.
 */
function tip(text) {
  return h('span', { text });
}

function renderLegend() {
  const dot = (colour, ring) => h('span', { class: 'dot' + (ring ? ' ring' : ''), style: `--c:${colour}` });
  fill(legend,
    h('li', {}, dot('#ffffff'), t('map.homes')),
    Object.entries(PRIORITY_COLOURS).slice(0, 3).map(([p, c]) => h('li', {}, dot(c, true), `${t('map.incidents')}: ${label('priority', p)}`)),
    Object.entries(STEWARD_COLOURS).map(([s, c]) => h('li', {}, dot(c), label('status', s))),
    state.config.map_tile_url ? null : h('li', { class: 'muted', text: t('map.no_tiles') }));
}

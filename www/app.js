// Dynamic Stream Server: the map page.
//
// One ES module, no build step. Leaflet and topojson-client are loaded by
// index.html (vendored in vendor/); hls.js is loaded when a player first
// opens. Everything comes from this host: the base layer is Natural Earth's
// land (vendor/world-atlas) drawn as vectors; online tiles only when
// GET /api/web names them.
//
// State flows one way: GET /api/events (Server-Sent Events) updates the
// model (`streams`, `providers`), and each change is applied to the map
// marker, the list row and the counts at once.

const L = window.L;
const STATES = ['live', 'starting', 'stopping', 'idle', 'backoff', 'refused', 'offline'];
/** Cluster colour: the most interesting state among its cameras. */
const PRIORITY = { live: 6, starting: 5, stopping: 4, backoff: 3, refused: 2, idle: 1, offline: 0 };
const CLUSTER_CELL = 60; // px: cameras closer than about this are grouped
const TRACK_POINTS = 500; // kept per phone
const TRACK_MINUTES = 30; // of history seeded from /track
const THUMB_REFRESH_MS = 5000;
const PLAY_ATTEMPTS = 5;

// ---------------------------------------------------------------- model

/** id → stream as in /api/streams (kept current by the events). */
const streams = new Map();
/** id → provider as in /api/providers. */
const providers = new Map();
/** id → statistics (/api/streams/{id}/stats or `stats` events). */
const stats = new Map();
/** Streams known to move (they sent `position` events). */
const moving = new Set();
/** Server clock minus ours (ms), from the snapshot. */
let clockSkew = 0;
let firstSnapshot = true;
let web = { tiles: null, attribution: null, center: null, zoom: null };

const isPhone = (s) => moving.has(s.id) || providers.get(s.provider)?.module === 'mobile-ts';
/** The state shown: `offline` for an idle stream its provider lists offline. */
const shownState = (s) => (!s.online && (s.state === 'idle' || !s.state) ? 'offline' : s.state || 'idle');

// ---------------------------------------------------------------- helpers

const $ = (sel) => document.querySelector(sel);
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v == null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k.startsWith('data-')) el.setAttribute(k, v);
    else if (k in el) el[k] = v;
    else el.setAttribute(k, v);
  }
  el.append(...children.filter((c) => c != null));
  return el;
}
async function getJSON(url) {
  const r = await fetch(url, { headers: { accept: 'application/json' } });
  if (!r.ok) {
    const e = new Error(`${url}: HTTP ${r.status}`);
    e.status = r.status;
    throw e;
  }
  return r.json();
}
const api = (path) => `api/${path}`;
const enc = encodeURIComponent;
const pct = (f) => (f == null ? '–' : `${Math.round(f * 100)}%`);
const secs = (s) => (s == null || s === 0 ? '–' : `${s.toFixed(1)} s`);
const plural = (n, one, many) => `${n} ${n === 1 ? one : many}`;

/** Calls `fn` at most once per `ms` (trailing), without relying on animation frames. */
function throttle(fn, ms) {
  let timer = null;
  return () => {
    if (timer) return;
    timer = setTimeout(() => { timer = null; fn(); }, ms);
  };
}

// ---------------------------------------------------------------- map

const map = L.map('map', {
  zoomControl: false,
  worldCopyJump: true,
  minZoom: 2,
  maxZoom: 18,
  preferCanvas: false,
}).setView([0, 0], 2);
L.control.zoom({ position: 'topright' }).addTo(map);
map.attributionControl.setPrefix('<a href="https://leafletjs.com" title="A JavaScript library for interactive maps">Leaflet</a>');
// Land under everything, online tiles (when configured) above it.
map.createPane('land').style.zIndex = 150;
map.getPane('land').style.pointerEvents = 'none';
const landRenderer = L.canvas({ padding: 0.5, pane: 'land' });
const cameraLayer = L.layerGroup().addTo(map);
const phoneLayer = L.layerGroup().addTo(map);
map.createPane('tracks').style.zIndex = 450;

/**
 * Natural Earth cuts land at ±180°; a ring that jumps across it (Chukotka,
 * Fiji) would be drawn as a band around the world. Its longitudes are made
 * continuous instead (a ring around the pole, which never closes that way,
 * is kept as it is).
 */
function unwrapRing(ring) {
  const out = [ring[0]];
  let shift = 0;
  for (let i = 1; i < ring.length; i++) {
    const d = ring[i][0] - ring[i - 1][0];
    if (d > 180) shift -= 360;
    else if (d < -180) shift += 360;
    out.push(shift ? [ring[i][0] + shift, ring[i][1]] : ring[i]);
  }
  return shift === 0 ? out : ring;
}

async function loadLand() {
  try {
    const topo = await getJSON('vendor/world-atlas/land-50m.json');
    const land = window.topojson.feature(topo, topo.objects.land);
    for (const f of land.features || [land]) {
      if (f.geometry?.type === 'MultiPolygon') f.geometry.coordinates = f.geometry.coordinates.map((p) => p.map(unwrapRing));
    }
    L.geoJSON(land, {
      renderer: landRenderer,
      pane: 'land',
      interactive: false,
      style: { color: '#c4bca9', weight: 1, fillColor: '#f3f0e8', fillOpacity: 1 },
      attribution: 'Land: <a href="https://www.naturalearthdata.com/">Natural Earth</a>',
    }).addTo(map);
  } catch (e) {
    console.warn('no land layer', e);
  }
}

async function loadWeb() {
  try {
    const r = await fetch(api('web'), { headers: { accept: 'application/json' } });
    if (r.ok) web = { ...web, ...(await r.json()) };
  } catch { /* defaults */ }
  if (typeof web.tiles === 'string' && web.tiles) {
    L.tileLayer(web.tiles, { attribution: web.attribution || '', maxZoom: 19 }).addTo(map);
  }
  if (Array.isArray(web.center) && web.center.length === 2) {
    map.setView(web.center, Number.isFinite(web.zoom) ? web.zoom : 12);
  }
}

/** The map's area not hidden by the side panel. */
function mapPadding() {
  const side = $('#side');
  const wide = window.innerWidth > 720 && !side.classList.contains('collapsed');
  return { paddingTopLeft: [wide ? side.offsetWidth + 30 : 30, 70], paddingBottomRight: [60, 30] };
}

function fitToMarkers() {
  if (Array.isArray(web.center)) return;
  const pts = [];
  for (const s of streams.values()) {
    if (!s.geo) continue;
    if (isPhone(s) && !s.online) continue;
    if (!isPhone(s) && !passesFilter(s)) continue;
    pts.push([s.geo.lat, s.geo.lon]);
  }
  if (pts.length === 0) { map.setView([20, 0], 2); return; }
  map.fitBounds(L.latLngBounds(pts), { ...mapPadding(), maxZoom: Number.isFinite(web.zoom) ? web.zoom : 15 });
}

// ------------------------------------------------------------ tooltips

/** The tooltip of the marker hovered or focused now. */
const tip = { id: null, el: null, timer: null, thumbOk: false };

function tipContent(id) {
  const s = streams.get(id);
  if (!s) return '';
  if (!tip.el || tip.id !== id) {
    tip.thumbOk = false;
    const img = h('img', { alt: '', width: 176, height: 132, hidden: true });
    img.addEventListener('load', () => { img.hidden = false; tip.thumbOk = true; });
    img.addEventListener('error', () => { img.hidden = true; tip.thumbOk = false; });
    tip.el = h('div', { class: 'tip' }, img,
      h('div', { class: 'tip-name' }),
      h('div', { class: 'tip-meta' }),
      h('div', { class: 'tip-stats' }));
    tip.id = id;
    refreshThumb();
  }
  fillTip();
  return tip.el;
}

function fillTip() {
  const s = streams.get(tip.id);
  if (!s || !tip.el) return;
  const st = shownState(s);
  tip.el.querySelector('.tip-name').textContent = s.name || s.id;
  tip.el.querySelector('.tip-meta').replaceChildren(
    h('span', { class: `badge state-${st}`, text: st }),
    ` ${plural(s.viewers || 0, 'viewer', 'viewers')}`,
    isPhone(s) ? ' · phone' : '');
  const x = stats.get(s.id);
  tip.el.querySelector('.tip-stats').textContent = x
    ? `uptime ${pct(x.uptime)} · warm-up ${secs(x.warmup)}`
    : 'uptime … · warm-up …';
}

/**
 * Reloads the thumbnail (a new query each time: it changes under the same
 * URL), once the stream's figures say it has one (never a request that
 * can only 404).
 */
function refreshThumb() {
  const img = tip.el?.querySelector('img');
  if (img && stats.get(tip.id)?.has_thumbnail) {
    img.src = `${api(`streams/${enc(tip.id)}/thumbnail`)}?size=small&t=${Date.now()}`;
  }
}

function tipOpened(id) {
  if (tip.id !== id) { tip.el = null; }
  clearInterval(tip.timer);
  tip.id = id;
  tip.timer = setInterval(refreshThumb, THUMB_REFRESH_MS);
  getJSON(api(`streams/${enc(id)}/stats`))
    .then((x) => {
      stats.set(id, { ...stats.get(id), ...x });
      if (tip.id === id) { fillTip(); if (!tip.thumbOk) refreshThumb(); }
    })
    .catch(() => {});
}

function tipClosed(id) {
  if (tip.id !== id) return;
  clearInterval(tip.timer);
  tip.timer = null;
  tip.id = null;
  tip.el = null;
}

function bindTip(marker, id) {
  marker.bindTooltip(() => tipContent(id), {
    direction: 'top', offset: [0, -10], opacity: 1, className: 'dss-tip',
  });
  marker.on('tooltipopen', () => tipOpened(id));
  marker.on('tooltipclose', () => tipClosed(id));
}

// ------------------------------------------------------------- markers

/** id → L.Marker of every camera with a position (shown alone or in a cluster). */
const cams = new Map();
/** Cameras drawn alone now. */
const drawn = new Set();
/** cell key → { marker, ids } of the clusters drawn now. */
const clusters = new Map();
/** id → { marker, line, points } of the phones online now. */
const phones = new Map();

function decorate(el, s) {
  const st = shownState(s);
  el.dataset.streamId = s.id;
  el.dataset.state = st;
  el.classList.remove(...STATES.map((x) => `state-${x}`));
  el.classList.add(`state-${st}`);
  el.setAttribute('aria-label', `${s.name || s.id}: ${st}, ${plural(s.viewers || 0, 'viewer', 'viewers')}`);
  el.classList.toggle('is-open', player.id === s.id);
}

function onMarkerKey(e, open) {
  if (e.key === 'Enter' || e.key === ' ') {
    e.preventDefault();
    e.stopPropagation();
    open();
  }
}

function makeCamera(s) {
  const m = L.marker([s.geo.lat, s.geo.lon], {
    icon: L.divIcon({ className: 'dss-marker', iconSize: [22, 22], html: '' }),
    keyboard: true,
    riseOnHover: true,
  });
  m.on('add', () => {
    const el = m.getElement();
    const cur = streams.get(s.id);
    if (cur) decorate(el, cur);
    el.addEventListener('keydown', (e) => onMarkerKey(e, () => openPlayer(s.id, el)));
  });
  m.on('click', () => openPlayer(s.id, m.getElement()));
  bindTip(m, s.id);
  return m;
}

function makePhone(s) {
  const ll = [s.geo.lat, s.geo.lon];
  const m = L.marker(ll, {
    icon: L.divIcon({ className: 'dss-phone', iconSize: [24, 24], html: '<span aria-hidden="true">▲</span>' }),
    keyboard: true,
    zIndexOffset: 1000,
  });
  m.on('add', () => {
    const el = m.getElement();
    const cur = streams.get(s.id);
    if (cur) decorate(el, cur);
    el.dataset.kind = 'phone';
    el.addEventListener('keydown', (e) => onMarkerKey(e, () => openPlayer(s.id, el)));
  });
  m.on('click', () => openPlayer(s.id, m.getElement()));
  bindTip(m, s.id);
  const line = L.polyline([ll], { pane: 'tracks', color: '#0b7a8f', weight: 3, opacity: 0.75, interactive: false });
  return { marker: m, line, points: [ll] };
}

/** Brings a stream's markers in line with the model: created, moved, removed, restyled. */
function syncMarkers(id) {
  const s = streams.get(id);
  // Phones.
  const showPhone = s && isPhone(s) && s.online && s.geo;
  const p = phones.get(id);
  if (showPhone && !p) {
    const np = makePhone(s);
    phones.set(id, np);
    np.line.addTo(phoneLayer);
    np.marker.addTo(phoneLayer);
    seedTrack(id);
  } else if (!showPhone && p) {
    phoneLayer.removeLayer(p.marker);
    phoneLayer.removeLayer(p.line);
    phones.delete(id);
  } else if (p) {
    const el = p.marker.getElement();
    if (el) decorate(el, s);
  }
  // Cameras.
  const showCam = s && !isPhone(s) && s.geo;
  const m = cams.get(id);
  if (showCam && !m) {
    cams.set(id, makeCamera(s));
    scheduleCluster();
  } else if (!showCam && m) {
    cameraLayer.removeLayer(m);
    cams.delete(id);
    drawn.delete(id);
    scheduleCluster();
  } else if (m) {
    const ll = m.getLatLng();
    if (ll.lat !== s.geo.lat || ll.lng !== s.geo.lon) {
      m.setLatLng([s.geo.lat, s.geo.lon]);
      scheduleCluster();
    }
    const el = m.getElement();
    if (el) decorate(el, s);
    if (!drawn.has(id)) scheduleCluster(); // its cluster's colour
  }
  if (tip.id === id) fillTip();
}

function cellOf(latlng, zoom) {
  const p = map.project(latlng, zoom);
  return `${Math.floor(p.x / CLUSTER_CELL)}:${Math.floor(p.y / CLUSTER_CELL)}`;
}

/** Groups the visible cameras by screen cell: one marker per lone camera, one cluster per crowded cell. */
function recluster() {
  const zoom = map.getZoom();
  const view = map.getBounds().pad(0.5);
  const cells = new Map();
  for (const [id, m] of cams) {
    const s = streams.get(id);
    if (!s || !passesFilter(s)) continue;
    const ll = m.getLatLng();
    if (!view.contains(ll)) continue;
    const key = cellOf(ll, zoom);
    let c = cells.get(key);
    if (!c) cells.set(key, (c = []));
    c.push(id);
  }
  const alone = new Set();
  const crowded = new Map();
  for (const [key, ids] of cells) {
    if (ids.length === 1) alone.add(ids[0]);
    else crowded.set(`${zoom}/${key}`, ids);
  }
  for (const id of drawn) {
    if (!alone.has(id)) { cameraLayer.removeLayer(cams.get(id)); drawn.delete(id); }
  }
  for (const id of alone) {
    if (!drawn.has(id)) { cams.get(id).addTo(cameraLayer); drawn.add(id); }
  }
  for (const [key, c] of clusters) {
    if (!crowded.has(key)) { cameraLayer.removeLayer(c.marker); clusters.delete(key); }
  }
  for (const [key, ids] of crowded) {
    let c = clusters.get(key);
    if (!c) {
      c = makeCluster();
      clusters.set(key, c);
    }
    c.ids = ids;
    const lat = ids.reduce((a, id) => a + cams.get(id).getLatLng().lat, 0) / ids.length;
    const lng = ids.reduce((a, id) => a + cams.get(id).getLatLng().lng, 0) / ids.length;
    c.marker.setLatLng([lat, lng]);
    if (!cameraLayer.hasLayer(c.marker)) c.marker.addTo(cameraLayer);
    styleCluster(c);
  }
}
const scheduleCluster = throttle(recluster, 100);

function clusterState(ids) {
  let best = 'offline';
  for (const id of ids) {
    const s = streams.get(id);
    const st = s ? shownState(s) : 'offline';
    if (PRIORITY[st] > PRIORITY[best]) best = st;
  }
  return best;
}

function styleCluster(c) {
  const el = c.marker.getElement();
  if (!el) return;
  const n = c.ids.length;
  const size = n < 10 ? 34 : n < 100 ? 40 : 48;
  el.style.width = el.style.height = `${size}px`;
  el.style.marginLeft = el.style.marginTop = `${-size / 2}px`;
  el.textContent = String(n);
  el.dataset.count = String(n);
  const st = clusterState(c.ids);
  el.dataset.state = st;
  el.classList.remove(...STATES.map((x) => `state-${x}`));
  el.classList.add(`state-${st}`);
  const live = c.ids.filter((id) => streams.get(id)?.state === 'live').length;
  el.setAttribute('aria-label', `${n} cameras${live ? `, ${live} live` : ''}: zoom in`);
}

function makeCluster() {
  const c = { ids: [], marker: null };
  c.marker = L.marker([0, 0], {
    icon: L.divIcon({ className: 'dss-cluster', iconSize: null, html: '' }),
    keyboard: true,
  });
  const open = () => openCluster(c);
  c.marker.on('add', () => {
    styleCluster(c);
    c.marker.getElement().addEventListener('keydown', (e) => onMarkerKey(e, open));
  });
  c.marker.on('click', open);
  c.marker.bindTooltip(() => {
    const names = c.ids.slice(0, 8).map((id) => {
      const s = streams.get(id);
      return h('li', {}, h('span', { class: `dot state-${s ? shownState(s) : 'offline'}` }), ` ${s?.name || id}`);
    });
    if (c.ids.length > 8) names.push(h('li', { text: `and ${c.ids.length - 8} more` }));
    return h('div', { class: 'tip' }, h('div', { class: 'tip-name', text: `${c.ids.length} cameras` }), h('ul', {}, ...names));
  }, { direction: 'top', offset: [0, -16], opacity: 1, className: 'dss-tip' });
  return c;
}

/** Zooms into a cluster; when it cannot be split by zooming (same place), lists it in a popup. */
function openCluster(c) {
  const bounds = L.latLngBounds(c.ids.map((id) => cams.get(id).getLatLng()));
  const z = map.getBoundsZoom(bounds, false, L.point(80, 80));
  if (map.getZoom() < map.getMaxZoom() && z > map.getZoom()) {
    map.fitBounds(bounds, { padding: [80, 80] });
    return;
  }
  const list = h('ul', { class: 'tip' }, ...c.ids.map((id) => {
    const s = streams.get(id);
    return h('li', {}, h('button', {
      type: 'button', class: 'copy', text: s?.name || id, onclick: () => { map.closePopup(); openPlayer(id); },
    }));
  }));
  L.popup({ maxHeight: 260 }).setLatLng(c.marker.getLatLng()).setContent(list).openOn(map);
}

/** Zooms until the camera is drawn alone, and pans it into view. */
function reveal(id) {
  const m = cams.get(id) || phones.get(id)?.marker;
  if (!m) return false;
  const ll = m.getLatLng();
  let z = map.getZoom();
  if (cams.has(id)) {
    const others = [...cams].filter(([o]) => o !== id && passesFilter(streams.get(o))).map(([, om]) => om.getLatLng());
    while (z < map.getMaxZoom() && others.some((o) => cellOf(o, z) === cellOf(ll, z))) z++;
  }
  if (z !== map.getZoom() || !map.getBounds().pad(-0.1).contains(ll)) map.setView(ll, z, { animate: false });
  recluster();
  return true;
}

// ------------------------------------------------------------- phones

async function seedTrack(id) {
  const since = Date.now() + clockSkew - TRACK_MINUTES * 60_000;
  try {
    const t = await getJSON(api(`streams/${enc(id)}/track?since=${since}`));
    const p = phones.get(id);
    if (!p || !Array.isArray(t.points)) return;
    const old = t.points.slice(-TRACK_POINTS).map((q) => [q.lat, q.lon]);
    p.points = [...old, ...p.points.slice(1)].slice(-TRACK_POINTS);
    p.line.setLatLngs(p.points);
  } catch { /* no track yet */ }
}

function onPosition(ev) {
  const known = moving.has(ev.id);
  moving.add(ev.id);
  const s = streams.get(ev.id);
  if (!s) return;
  s.geo = { lat: ev.lat, lon: ev.lon };
  // A first position can turn a camera into a phone, or show a phone.
  if (!known || !phones.has(ev.id)) { syncMarkers(ev.id); syncRow(ev.id); }
  const p = phones.get(ev.id);
  if (!p) return;
  const ll = [ev.lat, ev.lon];
  p.marker.setLatLng(ll);
  p.points.push(ll);
  if (p.points.length > TRACK_POINTS) p.points.splice(0, p.points.length - TRACK_POINTS);
  p.line.setLatLngs(p.points);
}

// ---------------------------------------------------------------- list

/** id → <li> of the list. */
const rows = new Map();
const filter = { q: '', provider: '', state: '' };

function passesFilter(s) {
  if (!s) return false;
  if (filter.provider && s.provider !== filter.provider) return false;
  if (filter.state && shownState(s) !== filter.state) return false;
  if (filter.q) {
    const hay = [s.id, s.name, s.provider, s.key, ...Object.values(s.tags || {})].join(' ').toLowerCase();
    if (!hay.includes(filter.q)) return false;
  }
  return true;
}

function syncRow(id) {
  const s = streams.get(id);
  let li = rows.get(id);
  if (!s) {
    if (li) { li.remove(); rows.delete(id); }
    scheduleCounts();
    return;
  }
  if (!li) {
    const btn = h('button', { type: 'button', class: 'row' },
      h('span', { class: 'dot' }), h('span', { class: 'name' }), h('span', { class: 'right' }), h('span', { class: 'sub' }));
    btn.addEventListener('click', () => openPlayer(id, btn));
    btn.addEventListener('mouseenter', () => highlight(id, true));
    btn.addEventListener('mouseleave', () => highlight(id, false));
    li = h('li', {}, btn);
    li.dataset.streamId = id;
    rows.set(id, li);
    $('#list').append(li);
    scheduleSort();
  }
  const btn = li.firstChild;
  const st = shownState(s);
  const phone = isPhone(s);
  btn.dataset.streamId = id;
  btn.dataset.state = st;
  li.dataset.state = st;
  btn.classList.toggle('is-open', player.id === id);
  btn.querySelector('.dot').className = `dot state-${st}`;
  if (btn.querySelector('.name').textContent !== (s.name || id)) {
    btn.querySelector('.name').textContent = s.name || id;
    scheduleSort();
  }
  btn.querySelector('.right').replaceChildren(
    h('span', { class: `badge state-${st}`, text: st }), h('br'),
    s.viewers ? plural(s.viewers, 'viewer', 'viewers') : '');
  btn.querySelector('.sub').textContent = `${id}${phone ? ' · phone' : ''}${s.geo ? '' : ' · no position'}`;
  btn.setAttribute('aria-label', `${s.name || id}, ${st}${s.viewers ? `, ${plural(s.viewers, 'viewer', 'viewers')}` : ''}${phone ? ', phone' : ''}`);
  li.hidden = !passesFilter(s);
  scheduleCounts();
}

const scheduleSort = throttle(() => {
  const list = $('#list');
  const sorted = [...rows.entries()].sort(([a], [b]) => {
    const sa = streams.get(a); const sb = streams.get(b);
    return (sa?.name || a).localeCompare(sb?.name || b) || a.localeCompare(b);
  });
  // Appending moves nodes; keep the focused row focused.
  const focused = document.activeElement;
  list.append(...sorted.map(([, li]) => li));
  if (focused && list.contains(focused)) focused.focus({ preventScroll: true });
}, 150);

function applyFilter() {
  for (const [id, li] of rows) li.hidden = !passesFilter(streams.get(id));
  recluster();
  scheduleCounts();
}

function highlight(id, on) {
  const m = cams.get(id) || phones.get(id)?.marker;
  if (!m) return;
  if (on && (drawn.has(id) || phones.has(id))) m.openTooltip();
  else if (!on) m.closeTooltip();
}

const scheduleCounts = throttle(() => {
  let live = 0; let viewers = 0; let phonesOnline = 0; let shown = 0;
  for (const s of streams.values()) {
    if (s.state === 'live') live++;
    viewers += s.viewers || 0;
    if (isPhone(s) && s.online) phonesOnline++;
    if (passesFilter(s)) shown++;
  }
  $('#n-live').textContent = live;
  $('#n-viewers').textContent = viewers;
  $('#n-phones').textContent = phonesOnline;
  $('#l-viewers').textContent = viewers === 1 ? 'viewer' : 'viewers';
  $('#l-phones').textContent = phonesOnline === 1 ? 'phone' : 'phones';
  $('#shown').textContent = shown === streams.size
    ? plural(streams.size, 'stream', 'streams')
    : `${shown} of ${plural(streams.size, 'stream', 'streams')}`;
}, 100);

// ----------------------------------------------------------- providers

function renderProviders() {
  const tbody = $('#providers tbody');
  tbody.replaceChildren();
  const sel = $('#f-provider');
  const chosen = sel.value;
  sel.replaceChildren(h('option', { value: '', text: 'All providers' }));
  const list = [...providers.values()].sort((a, b) => a.id.localeCompare(b.id));
  let failed = 0;
  for (const p of list) {
    if (p.state === 'failed') failed++;
    tbody.append(h('tr', {},
      h('td', { text: p.id }),
      h('td', { text: p.module }),
      h('td', { text: p.version || '–' }),
      h('td', { class: `prov-${p.state}`, text: p.stale ? `${p.state} (stale)` : p.state }),
      h('td', { text: String(p.stream_count ?? 0) })));
    const err = p.last_error || (p.has_error ? 'failed (the error is on the host: dss providers check, or /api/providers from the host)' : null);
    if (err) tbody.append(h('tr', { class: 'err' }, h('td', { class: 'error', colSpan: 5, text: err })));
    sel.append(h('option', { value: p.id, text: `${p.id} (${p.module})` }));
  }
  sel.value = providers.has(chosen) ? chosen : '';
  if (sel.value !== chosen) { filter.provider = sel.value; applyFilter(); }
  $('#n-providers').textContent = `(${list.length}${failed ? `, ${failed} failed` : ''})`;
  if (failed && window.innerWidth > 720) $('#providers-box').open = true;
}
const scheduleProviders = throttle(renderProviders, 100);

// ------------------------------------------------------------- events

function upsert(s, { keepState = false } = {}) {
  const old = streams.get(s.id);
  const next = { ...old, ...s };
  if (keepState && old) { next.state = old.state; next.viewers = old.viewers; }
  streams.set(s.id, next);
  syncMarkers(s.id);
  syncRow(s.id);
  if (player.id === s.id) showPlayerState();
}

function remove(id) {
  streams.delete(id);
  moving.delete(id);
  syncMarkers(id);
  syncRow(id);
}

function onSnapshot(snap) {
  clockSkew = (snap.time_ms || Date.now()) - Date.now();
  providers.clear();
  for (const p of snap.providers || []) providers.set(p.id, p);
  const seen = new Set();
  for (const s of snap.streams || []) {
    seen.add(s.id);
    streams.set(s.id, { ...streams.get(s.id), ...s });
  }
  for (const id of [...streams.keys()]) if (!seen.has(id)) streams.delete(id);
  for (const id of new Set([...seen, ...cams.keys(), ...phones.keys(), ...rows.keys()])) {
    syncMarkers(id);
    syncRow(id);
  }
  renderProviders();
  if (firstSnapshot) {
    firstSnapshot = false;
    fitToMarkers();
  }
  recluster();
  if (player.id) showPlayerState();
  test.ready = true;
}

const handlers = {
  snapshot: onSnapshot,
  stream(ev) {
    const s = streams.get(ev.id);
    if (!s) return;
    s.state = ev.state;
    s.viewers = ev.viewers;
    syncMarkers(ev.id);
    syncRow(ev.id);
    if (player.id === ev.id) showPlayerState();
  },
  listed(s) { upsert(s, { keepState: false }); },
  unlisted(ev) { remove(ev.id); },
  provider(p) {
    if (p.removed) providers.delete(p.id);
    else providers.set(p.id, p);
    scheduleProviders();
    // A stream is a phone by its provider's module.
    for (const s of streams.values()) if (s.provider === p.id) { syncMarkers(s.id); syncRow(s.id); }
  },
  phone(ev) {
    const s = streams.get(ev.id);
    if (!s) return;
    s.online = ev.online;
    syncMarkers(ev.id);
    syncRow(ev.id);
  },
  position: onPosition,
  stats(ev) {
    const had = stats.get(ev.id)?.has_thumbnail;
    stats.set(ev.id, { ...stats.get(ev.id), ...ev });
    if (tip.id === ev.id) {
      fillTip();
      if (ev.has_thumbnail && !had) refreshThumb();
    }
  },
  resync() { /* a snapshot follows */ },
};

function connect() {
  const conn = $('#conn');
  const es = new EventSource(api('events'));
  es.addEventListener('open', () => { conn.dataset.conn = 'open'; conn.textContent = 'live'; });
  es.addEventListener('error', () => {
    // The browser reconnects by itself and gets a new snapshot.
    conn.dataset.conn = es.readyState === EventSource.CLOSED ? 'error' : 'connecting';
    conn.textContent = es.readyState === EventSource.CLOSED ? 'disconnected' : 'reconnecting…';
    if (es.readyState === EventSource.CLOSED) setTimeout(connect, 5000);
  });
  for (const [name, fn] of Object.entries(handlers)) {
    es.addEventListener(name, (e) => {
      let data;
      try { data = JSON.parse(e.data); } catch { return; }
      fn(data);
    });
  }
}

// -------------------------------------------------------------- player

const player = {
  id: null, hls: null, attempt: 0, started: false, retryTimer: null, opener: null,
  detail: null, url: null, session: 0, recovered: false, lastState: null,
};
const video = $('#video');

function loadScript(src) {
  return new Promise((resolve, reject) => {
    const el = h('script', { src });
    el.onload = resolve;
    el.onerror = () => reject(new Error(`cannot load ${src}`));
    document.head.append(el);
  });
}
let hlsLoading = null;
function loadHls() {
  if (window.Hls) return Promise.resolve(window.Hls);
  hlsLoading ||= loadScript('vendor/hls.js/hls.light.min.js').then(() => window.Hls);
  return hlsLoading;
}

function setStatus(text) { $('#player-status').textContent = text || ''; }
function setError(text) {
  const el = $('#player-error');
  el.textContent = text || '';
  el.hidden = !text;
}

/** A URL the API gives with HOST, for this page's host. */
const hostUrl = (u) => (u ? u.replace('HOST', location.hostname) : '');

function showUrls(urls) {
  const dl = $('#player-urls');
  dl.replaceChildren();
  for (const kind of ['hls', 'dash', 'rtmp']) {
    const u = hostUrl(urls?.[kind]);
    if (!u) continue;
    const input = h('input', { type: 'text', readOnly: true, value: u, 'aria-label': `${kind.toUpperCase()} URL` });
    const btn = h('button', { type: 'button', class: 'copy', text: 'Copy' });
    btn.addEventListener('click', () => copy(input, btn));
    dl.append(h('dt', { text: kind.toUpperCase() }), h('dd', {}, input), h('dd', {}, btn));
  }
}

async function copy(input, btn) {
  let ok = false;
  try {
    await navigator.clipboard.writeText(input.value);
    ok = true;
  } catch {
    input.select();
    try { ok = document.execCommand('copy'); } catch { ok = false; }
  }
  btn.textContent = ok ? 'Copied' : 'Select ⌘/Ctrl+C';
  setTimeout(() => { btn.textContent = 'Copy'; }, 1500);
}

function showPlayerState() {
  const s = streams.get(player.id);
  if (!s) {
    setError('This stream is no longer listed.');
    return;
  }
  const st = shownState(s);
  $('#player-title').textContent = s.name || s.id;
  const badge = $('#player-state');
  badge.className = `badge state-${st}`;
  badge.textContent = `${st}${s.viewers ? ` · ${plural(s.viewers, 'viewer', 'viewers')}` : ''}`;
  $('#player-dot').className = `dot state-${st}`;
  if (st !== player.lastState && (st === 'backoff' || st === 'refused') && !player.started) explainFailure();
  player.lastState = st;
  if (s.state === 'live' && player.started) setError('');
}

/** Why the stream does not play: its state and error from /api/streams/{id}. */
async function explainFailure() {
  const id = player.id;
  const session = player.session;
  let d = null;
  try { d = await getJSON(api(`streams/${enc(id)}`)); } catch { /* keep the state */ }
  if (player.session !== session) return;
  const s = streams.get(id);
  const state = d?.state || s?.state;
  if (state !== 'backoff' && state !== 'refused') return;
  let msg;
  if (state === 'refused') {
    msg = `The host refuses to run this stream${d?.last_error ? `: ${d.last_error}` : ' (its source or options are not allowed by the FFmpeg policy).'}`;
    stopPlayback();
    setStatus('');
    $('#player-actions').hidden = true;
  } else {
    const why = d?.last_error || (d?.has_error ? 'FFmpeg failed (the details are in the host\'s log and private API)' : 'FFmpeg failed');
    msg = `The stream failed to start: ${why}. The host retries${d?.failures ? ` (${plural(d.failures, 'failure', 'failures')} so far)` : ''}.`;
  }
  setError(msg);
}

function stopPlayback() {
  player.session++;
  clearTimeout(player.retryTimer);
  player.retryTimer = null;
  if (player.hls) { player.hls.destroy(); player.hls = null; }
  video.pause();
  video.removeAttribute('src');
  video.load();
}

/** Native HLS for Apple's browsers (and any without MSE); hls.js elsewhere. */
function useNative(Hls) {
  const native = !!video.canPlayType('application/vnd.apple.mpegurl');
  if (!native) return false;
  if (!Hls || !Hls.isSupported()) return true;
  return /Apple/.test(navigator.vendor || '');
}

async function openPlayer(id, opener) {
  if (player.id === id && !$('#player').hidden) { video.focus(); return; }
  closePlayer({ restoreFocus: false });
  const s = streams.get(id);
  if (!s) return;
  player.id = id;
  player.opener = opener || document.activeElement;
  player.attempt = 0;
  player.started = false;
  player.detail = null;
  player.recovered = false;
  player.lastState = null;
  $('#player').hidden = false;
  setError('');
  $('#player-actions').hidden = true;
  $('#player-urls').replaceChildren();
  setStatus('starting…');
  showPlayerState();
  markOpen(id, true);
  $('#player-close').focus({ preventScroll: true });
  const session = ++player.session;
  let d;
  try {
    d = await getJSON(api(`streams/${enc(id)}`));
  } catch (e) {
    if (player.session !== session) return;
    setStatus('');
    setError(`Cannot read the stream: ${e.message}`);
    return;
  }
  if (player.session !== session) return;
  player.detail = d;
  showUrls(d.urls);
  if (d.state === 'refused') {
    setStatus('');
    explainFailure();
    return;
  }
  player.url = hostUrl(d.urls?.hls);
  if (!player.url) { setStatus(''); setError('The host gives no HLS URL for this stream.'); return; }
  attach(session);
}

async function attach(session) {
  player.attempt++;
  let Hls = null;
  try { Hls = await loadHls(); } catch { /* native only */ }
  if (player.session !== session) return;
  if (useNative(Hls)) {
    video.src = player.url;
    play(session);
    return;
  }
  if (!Hls || !Hls.isSupported()) {
    setStatus('');
    setError('This browser cannot play HLS. Use one of the URLs below in a player such as VLC or ffplay.');
    return;
  }
  const hls = new Hls({
    // The first playlist request starts the stream: nginx holds it until
    // the stream is up (about 10 s at most), then it may fail (404/503).
    // Retries are ours, with a visible message.
    manifestLoadPolicy: {
      default: {
        maxTimeToFirstByteMs: 20000,
        maxLoadTimeMs: 25000,
        timeoutRetry: { maxNumRetry: 0, retryDelayMs: 0, maxRetryDelayMs: 0 },
        errorRetry: { maxNumRetry: 0, retryDelayMs: 1000, maxRetryDelayMs: 1000 },
      },
    },
    liveSyncDurationCount: 3,
    enableWorker: true,
    backBufferLength: 30,
  });
  player.hls = hls;
  hls.on(Hls.Events.ERROR, (_, data) => {
    if (player.session !== session || !data.fatal) return;
    if (data.type === Hls.ErrorTypes.MEDIA_ERROR && !player.recovered) {
      player.recovered = true;
      hls.recoverMediaError();
      return;
    }
    const code = data.response?.code;
    retry(session, code ? `HTTP ${code}` : data.details);
  });
  hls.loadSource(player.url);
  hls.attachMedia(video);
  play(session);
}

function play(session) {
  const p = video.play();
  if (p && p.catch) {
    p.catch((e) => {
      if (player.session !== session || e.name !== 'NotAllowedError') return;
      // Autoplay with sound refused: play muted (the controls unmute).
      video.muted = true;
      video.play().catch(() => {});
    });
  }
}

function retry(session, why) {
  if (player.session !== session) return;
  if (player.hls) { player.hls.destroy(); player.hls = null; }
  const s = streams.get(player.id);
  if (s?.state === 'refused') { explainFailure(); return; }
  if (player.attempt >= PLAY_ATTEMPTS) {
    setStatus('');
    setError(`The stream did not start (${why}) after ${PLAY_ATTEMPTS} attempts.`);
    $('#player-actions').hidden = false;
    if (s?.state === 'backoff') explainFailure();
    return;
  }
  player.started = false;
  setStatus(`not up yet (${why}); retrying ${player.attempt + 1}/${PLAY_ATTEMPTS}…`);
  player.retryTimer = setTimeout(() => {
    if (player.session !== session) return;
    attach(session);
  }, 2000);
}

function onFirstFrame() {
  if (!player.id || player.started) return;
  if (video.currentTime <= 0 && video.readyState < 3) return;
  player.started = true;
  player.recovered = false;
  setStatus('');
  setError('');
}
video.addEventListener('playing', onFirstFrame);
video.addEventListener('timeupdate', () => { if (video.currentTime > 0) onFirstFrame(); });
video.addEventListener('error', () => {
  // Native playback only (hls.js reports its own errors).
  if (!player.id || player.hls) return;
  const session = player.session;
  video.removeAttribute('src');
  retry(session, video.error?.message || 'media error');
});

function markOpen(id, on) {
  const m = cams.get(id) || phones.get(id)?.marker;
  m?.getElement()?.classList.toggle('is-open', on);
  rows.get(id)?.firstChild.classList.toggle('is-open', on);
}

function closePlayer({ restoreFocus = true } = {}) {
  if (!player.id) return;
  stopPlayback();
  markOpen(player.id, false);
  const opener = player.opener;
  player.id = null;
  player.detail = null;
  player.opener = null;
  $('#player').hidden = true;
  setStatus('');
  setError('');
  if (restoreFocus && opener && document.contains(opener)) opener.focus({ preventScroll: true });
}

$('#player-close').addEventListener('click', () => closePlayer());
$('#player-retry').addEventListener('click', () => {
  if (!player.id) return;
  const id = player.id; const opener = player.opener;
  closePlayer({ restoreFocus: false });
  openPlayer(id, opener);
});

// ------------------------------------------------------------ UI wiring

function toggleSide(open) {
  const side = $('#side');
  const wasOpen = !side.classList.contains('collapsed');
  const next = open ?? !wasOpen;
  side.classList.toggle('collapsed', !next);
  $('#side-toggle').setAttribute('aria-expanded', String(next));
}
$('#side-toggle').addEventListener('click', () => toggleSide());
if (window.innerWidth <= 720) toggleSide(false);

$('#q').addEventListener('input', (e) => { filter.q = e.target.value.trim().toLowerCase(); applyFilter(); });
$('#f-provider').addEventListener('change', (e) => { filter.provider = e.target.value; applyFilter(); });
$('#f-state').addEventListener('change', (e) => { filter.state = e.target.value; applyFilter(); });

document.addEventListener('keydown', (e) => {
  if (e.key !== 'Escape') return;
  if (player.id) { e.preventDefault(); closePlayer(); return; }
  map.closePopup();
  if (tip.id) (cams.get(tip.id) || phones.get(tip.id)?.marker)?.closeTooltip();
  if (window.innerWidth <= 720 && !$('#side').classList.contains('collapsed')) toggleSide(false);
});

map.on('zoomend moveend', scheduleCluster);

function legend() {
  const el = $('#legend');
  el.append(...['live', 'starting', 'stopping', 'idle', 'offline', 'backoff', 'refused'].map((st) =>
    h('div', {}, h('span', { class: `dot state-${st}` }), st)));
  el.append(h('div', {}, h('span', { class: 'phone-key' }), 'phone'));
}

// ------------------------------------------------------------ test hook

/** For tests/browser/page.test.mjs: read-only views of what is drawn. */
const test = {
  ready: false,
  /** Every camera marker (drawn alone or in a cluster). */
  markerIds: () => [...cams.keys()].sort(),
  /** Phones with a marker now. */
  phoneIds: () => [...phones.keys()].sort(),
  phoneLatLng: (id) => {
    const m = phones.get(id)?.marker;
    if (!m) return null;
    const ll = m.getLatLng();
    return { lat: ll.lat, lon: ll.lng };
  },
  /** What the map shows now: cameras alone, clusters (their counts), off-screen. */
  rendered: () => {
    const inClusters = [...clusters.values()].reduce((a, c) => a + c.ids.length, 0);
    const filteredOut = [...cams.keys()].filter((id) => !passesFilter(streams.get(id))).length;
    return {
      alone: [...drawn].sort(),
      clusters: [...clusters.values()].map((c) => c.ids.length),
      elsewhere: cams.size - drawn.size - inClusters - filteredOut,
      filteredOut,
    };
  },
  reveal,
  state: (id) => (streams.has(id) ? shownState(streams.get(id)) : null),
};
window.dssTest = test;

// ---------------------------------------------------------------- start

legend();
loadLand();
await loadWeb();
connect();
// Lazy providers list on first use: ask once (the events bring the result).
fetch(api('streams')).catch(() => {});

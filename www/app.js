// Dynamic Stream Server: the map page.
//
// One ES module, no build step. Leaflet, topojson-client and supercluster
// are loaded by index.html (vendored in vendor/); hls.js is loaded when a
// player first opens. Everything comes from this host: the base layer is
// Natural Earth's land (vendor/world-atlas) drawn as vectors; online tiles
// only when GET /api/web names them.
//
// The page holds only the map's area, so that a host of 100,000 streams
// costs it about what a city's cameras do. For the view padded by half of
// it on every side (the box) it first asks GET /api/clusters?bbox=W,S,E,N
// how many streams the box holds (counted on a grid: a few kilobytes):
//  - at most DETAIL_MAX (a city): detailed mode. It subscribes to
//    GET /api/events?bbox= (a snapshot of the box's streams, then their
//    changes) and subscribes again, with a new box, only when the view has
//    left the box (or has become much smaller than it). The cameras it
//    holds are clustered by supercluster, and only the clusters and cameras
//    in view are Leaflet markers.
//  - more (zoomed out over a country): overview mode. No subscription; the
//    host's clusters are drawn as they are, asked again on every view
//    change and every OVERVIEW_REFRESH_MS (a 304 when nothing changed).
// The count is not asked again for a box inside one already counted small.
// Streams without a position are not in any box: they are read from the
// listings of the small providers, for the list.
//
// State flows one way: the events update the model (`streams`,
// `providers`), and each change is applied to the marker, the list row and
// the counts.

const L = window.L;
const Supercluster = window.Supercluster;
const STATES = ['live', 'starting', 'stopping', 'idle', 'backoff', 'refused', 'offline'];
/** Cluster colour: the most interesting state among its cameras. */
const PRIORITY = { live: 6, starting: 5, stopping: 4, backoff: 3, refused: 2, idle: 1, offline: 0 };
const BY_PRIORITY = Object.fromEntries(Object.entries(PRIORITY).map(([st, p]) => [p, st]));
const CLUSTER_RADIUS = 48; // px: cameras closer than about this are grouped
const BOX_PAD = 0.5; // the subscribed box: the view and half of it again on every side
const BOX_SHRINK = 6; // a view this many times narrower than its box (zoomed in 2 levels) subscribes again
const MOVE_DEBOUNCE_MS = 250; // a pan or zoom settles this long before the box is checked
/**
 * A box holding more streams than this is not subscribed to (overview mode):
 * a snapshot costs the page about 160 bytes and 15-20 µs of main thread per
 * stream (JSON, model, index), so 100,000 are 16 MB and 1.5 s or more of a
 * page that does not answer, while 5,000 are under a megabyte and about a
 * tenth of a second: the most one view may cost and stay interactive.
 */
const DETAIL_MAX = 5000;
const OVERVIEW_REFRESH_MS = 10_000; // the host's clusters asked again this often (a 304 when unchanged)
const DECIDE_GRID = 4; // a view's count, unless in overview: 16 cells at most (a few hundred bytes), enough to know boxes inside it small
const AREA_PX = 60; // the host's grid: cells about this many pixels on their shorter side (supercluster's spacing)
const CENSUS_MAX_AGE_MS = 60_000; // a count older than this does not spare asking again
const AREA_MAX_ZOOM = 15; // a click on a host's cluster zooms to its streams, at most this close
const DRAW_PAD = 0.2; // markers for the view and a fifth of it around: a small pan shows them at once
const LIST_MAX = 300; // rows at most: beyond, the list asks to zoom in or search
const UNPLACED_PROVIDER_MAX = 1000; // providers at most this big are read whole for their streams without a position
const UNPLACED_REFRESH_MS = 20_000; // their state comes with no event: read again this often
const PLAYER_POLL_MS = 5000; // the open stream's state, when no event tells it
const TRACK_POINTS = 500; // kept per phone
const TRACK_MINUTES = 30; // of history seeded from /track
const THUMB_REFRESH_MS = 5000;
const PLAY_ATTEMPTS = 5;

// ---------------------------------------------------------------- model

/** id → stream as in /api/streams (kept current by the events): those in the box, and a few kept (`kept`). */
const streams = new Map();
/** id → provider as in /api/providers (all of them: the snapshot has every provider). */
const providers = new Map();
/** id → statistics (/api/streams/{id}/stats or `stats` events). */
const stats = new Map();
/** Streams known to move (they sent `position` events). */
const moving = new Set();
/** provider id → ids of its streams without a position, read from its whole listing (small providers only). */
const unplaced = new Map();
/** Server clock minus ours (ms), from the snapshot. */
let clockSkew = 0;
/** The first view drawn (a snapshot, or the host's clusters) has fitted the map to it (without [web] center). */
let fitted = false;
/** The streams without a position have been asked for (once the providers are known). */
let unplacedStarted = false;
let web = { tiles: null, attribution: null, center: null, zoom: null };

const isPhone = (s) => moving.has(s.id) || providers.get(s.provider)?.module === 'mobile-ts';
/** The state shown: `offline` for an idle stream its provider lists offline. */
const shownState = (s) => (!s.online && (s.state === 'idle' || !s.state) ? 'offline' : s.state || 'idle');
const isUnplaced = (s) => !s.geo && [...unplaced.values()].some((ids) => ids.has(s.id));

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
async function getJSON(url, init = {}) {
  const r = await fetch(url, { ...init, headers: { accept: 'application/json' } });
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
const plural = (n, one, many) => `${n.toLocaleString('en')} ${n === 1 ? one : many}`;
const byName = new Intl.Collator('en', { numeric: true, sensitivity: 'base' }).compare;

/** Calls `fn` at most once per `ms` (trailing), without relying on animation frames. */
function throttle(fn, ms) {
  let timer = null;
  return () => {
    if (timer) return;
    timer = setTimeout(() => { timer = null; fn(); }, ms);
  };
}

/** A stream as /api/streams lists it, from its /api/streams/{id} view (there `viewers` is split by kind). */
function brief(d) {
  const { id, provider, key, name, geo, online, tags, state } = d;
  const v = d.viewers;
  const viewers = typeof v === 'number' ? v : (v?.rtmp || 0) + (v?.http || 0);
  return { id, provider, key, name, geo: geo || undefined, online, tags, state, viewers };
}

// ---------------------------------------------------------- boxes

/** Longitude into [-180, 180). */
const wrapLon = (x) => ((((x + 180) % 360) + 360) % 360) - 180;
const fmt = (x) => String(+x.toFixed(4));

/**
 * `bounds` as the API takes a box: west, south, east, north in degrees,
 * west > east when it crosses the antimeridian, every longitude when it is
 * 360° wide or more, latitudes within ±90; rounded outwards (short URLs,
 * never a smaller box). `width` is its width in degrees.
 */
function boxOf(bounds) {
  const s = Math.max(-90, Math.floor(bounds.getSouth() * 1e4) / 1e4);
  const n = Math.min(90, Math.ceil(bounds.getNorth() * 1e4) / 1e4);
  const w = Math.floor(bounds.getWest() * 1e4) / 1e4;
  const e = Math.ceil(bounds.getEast() * 1e4) / 1e4;
  if (e - w >= 360) return { w: -180, s, e: 180, n, width: 360 };
  let east = wrapLon(e);
  if (east === -180) east = 180;
  return { w: wrapLon(w), s, e: east, n, width: e - w };
}
const bboxParam = (b) => `${fmt(b.w)},${fmt(b.s)},${fmt(b.e)},${fmt(b.n)}`;

/** Whether a position is in box `b` (any copy of the world). */
function inBox(b, lat, lon) {
  if (!b || lat < b.s || lat > b.n) return false;
  if (b.width >= 360) return true;
  return ((((lon - b.w) % 360) + 360) % 360) <= b.width;
}

/** Whether box `b` holds all of `bounds` (the view, on any copy of the world). */
function covers(b, bounds) {
  if (!b || Math.max(-90, bounds.getSouth()) < b.s || Math.min(90, bounds.getNorth()) > b.n) return false;
  if (b.width >= 360) return true;
  const width = bounds.getEast() - bounds.getWest();
  const d = (((bounds.getWest() - b.w) % 360) + 360) % 360;
  return d + width <= b.width;
}

/** Whether box `outer` holds all of box `inner` (both as boxOf makes them). */
function boxCovers(outer, inner) {
  if (!outer || inner.s < outer.s || inner.n > outer.n) return false;
  if (outer.width >= 360) return true;
  if (inner.width >= 360) return false;
  const d = (((inner.w - outer.w) % 360) + 360) % 360;
  return d + inner.width <= outer.width;
}

/** Whether box `b` and a cell's extent [W,S,E,N] (as /api/clusters gives it, W > E across the antimeridian) meet. */
function boxMeets(b, [w, s, e, n]) {
  if (s > b.n || n < b.s) return false;
  if (b.width >= 360) return true;
  const mod = (x) => ((x % 360) + 360) % 360;
  return mod(w - b.w) <= b.width || mod(b.w - w) <= mod(e - w);
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
 * is kept as it is), then moved by whole turns so that the middle of its
 * extent is on the map's own copy of the world: Eurasia's ring starts in
 * Chukotka, and continuous from there it would lie a world to the west
 * (no Europe at 10° E).
 */
function unwrapRing(ring) {
  const out = [ring[0]];
  let shift = 0;
  let min = ring[0][0];
  let max = min;
  for (let i = 1; i < ring.length; i++) {
    const d = ring[i][0] - ring[i - 1][0];
    if (d > 180) shift -= 360;
    else if (d < -180) shift += 360;
    const lon = ring[i][0] + shift;
    if (lon < min) min = lon;
    if (lon > max) max = lon;
    out.push(shift ? [lon, ring[i][1]] : ring[i]);
  }
  if (shift !== 0) return ring;
  const turn = 360 * Math.round(-(min + max) / 2 / 360);
  return turn === 0 ? out : out.map(([lon, lat]) => [lon + turn, lat]);
}

/**
 * Draws the coastline: fetched at once (`landFetch`), parsed and drawn once
 * the first snapshot's markers are painted (or after LAND_LATEST_MS without
 * one): half a megabyte of TopoJSON costs the main thread about what the
 * view's streams do, and the streams come first.
 */
const LAND_LATEST_MS = 3000;
const landFetch = getJSON('vendor/world-atlas/land-50m.json');
landFetch.catch(() => {}); // reported when drawn
let landStarted = false;
function loadLandSoon() {
  if (landStarted) return;
  landStarted = true;
  setTimeout(loadLand, 0);
}
setTimeout(loadLandSoon, LAND_LATEST_MS);

async function loadLand() {
  try {
    const topo = await landFetch;
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

/** Fits the map to the cameras of the first snapshot, or to the host's clusters (`answer`) of the first overview. */
function fitToMarkers(answer) {
  if (Array.isArray(web.center)) return;
  const pts = [];
  for (const c of answer?.cells || []) pts.push([c.lat, c.lon]);
  for (const s of answer ? [] : streams.values()) {
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

/** id → L.Marker of the cameras drawn alone now (made when drawn, dropped when not). */
const cams = new Map();
/** supercluster cluster id → { id, props, marker } of the clusters drawn now. */
const clusters = new Map();
/** id → { marker, line, points } of the phones online now (few: never clustered). */
const phones = new Map();

/**
 * The cameras held that pass the filter, clustered at every zoom.
 * supercluster's index cannot change: a change marks it dirty, and the next
 * draw builds it again (milliseconds for a city's cameras).
 */
let index = null;
let indexDirty = true;
/** How long the last build took (ms): draws after changes are spaced by it. */
let indexMs = 0;
let drawTimer = null;

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

/** One icon for every camera (an icon makes a new element for each marker). */
const cameraIcon = L.divIcon({ className: 'dss-marker', iconSize: [22, 22], html: '' });

function makeCamera(id, ll) {
  const m = L.marker(ll, {
    icon: cameraIcon,
    keyboard: true,
    riseOnHover: true,
  });
  m.on('add', () => {
    const el = m.getElement();
    const cur = streams.get(id);
    if (cur) decorate(el, cur);
    el.addEventListener('keydown', (e) => onMarkerKey(e, () => openPlayer(id, el)));
  });
  m.on('click', () => openPlayer(id, m.getElement()));
  bindTip(m, id);
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

/** Brings a phone's marker in line with the model: created, removed, restyled. */
function syncPhone(id) {
  const s = streams.get(id);
  const show = s && isPhone(s) && s.online && s.geo;
  const p = phones.get(id);
  if (show && !p) {
    const np = makePhone(s);
    phones.set(id, np);
    np.line.addTo(phoneLayer);
    np.marker.addTo(phoneLayer);
    seedTrack(id);
  } else if (!show && p) {
    phoneLayer.removeLayer(p.marker);
    phoneLayer.removeLayer(p.line);
    phones.delete(id);
  } else if (p) {
    const el = p.marker.getElement();
    if (el) decorate(el, s);
  }
}

/**
 * A stream changed: its phone marker and its camera marker (if drawn alone)
 * at once, its row, and, when `regroup` (its position, state or kind
 * changed), the clusters at the next draw.
 */
function syncStream(id, { regroup = true } = {}) {
  syncPhone(id);
  const s = streams.get(id);
  const el = cams.get(id)?.getElement();
  if (el && s) decorate(el, s);
  if (regroup) {
    indexDirty = true;
    scheduleDraw();
  }
  syncRow(id);
  scheduleList();
  scheduleCounts();
  if (tip.id === id) fillTip();
}

function buildIndex() {
  const t0 = performance.now();
  const points = [];
  for (const s of streams.values()) {
    if (!s.geo || isPhone(s) || !passesFilter(s)) continue;
    points.push({
      type: 'Feature', id: s.id, properties: { id: s.id },
      geometry: { type: 'Point', coordinates: [s.geo.lon, s.geo.lat] },
    });
  }
  index = new Supercluster({
    radius: CLUSTER_RADIUS,
    extent: 256, // Leaflet's tile size: the radius is in the map's pixels at every zoom
    minZoom: map.getMinZoom(),
    maxZoom: map.getMaxZoom(), // cameras at one place stay a cluster (a list) even at the last zoom
    // Each cluster carries its most interesting state and how many of its cameras are live.
    map: (p) => {
      const s = streams.get(p.id);
      const st = s ? shownState(s) : 'offline';
      return { p: PRIORITY[st], live: st === 'live' ? 1 : 0 };
    },
    reduce: (acc, p) => {
      if (p.p > acc.p) acc.p = p.p;
      acc.live += p.live;
    },
  });
  index.load(points);
  indexDirty = false;
  indexMs = performance.now() - t0;
  test.indexed = points.length;
}

/** Draws soon: a big index (the whole world held) is built again at most a fifth of the time. */
function scheduleDraw() {
  if (drawTimer) return;
  drawTimer = setTimeout(draw, Math.max(100, 4 * indexMs));
}

/**
 * Makes the markers of the view: the clusters and lone cameras supercluster
 * gives for it at this zoom. Markers already drawn are kept (a camera's by
 * its id, a cluster's by its id in the index), the rest made or removed.
 */
function draw() {
  clearTimeout(drawTimer);
  drawTimer = null;
  if (indexDirty) buildIndex();
  const zoom = Math.round(map.getZoom());
  const view = map.getBounds().pad(DRAW_PAD);
  const centre = map.getCenter().lng;
  const features = index.getClusters([view.getWest(), view.getSouth(), view.getEast(), view.getNorth()], zoom);
  const alone = new Map();
  const groups = new Map();
  for (const f of features) {
    const [lon, lat] = f.geometry.coordinates;
    // On the copy of the world in view (Leaflet draws a marker where its longitude says).
    const ll = L.latLng(lat, lon + 360 * Math.round((centre - lon) / 360));
    if (f.properties.cluster) groups.set(f.id, { props: f.properties, ll });
    else alone.set(f.id, ll);
  }
  for (const [id, m] of cams) {
    if (!alone.has(id)) { cameraLayer.removeLayer(m); cams.delete(id); }
  }
  for (const [key, c] of clusters) {
    if (!groups.has(key)) { cameraLayer.removeLayer(c.marker); clusters.delete(key); }
  }
  for (const [id, ll] of alone) {
    const m = cams.get(id);
    if (!m) {
      const nm = makeCamera(id, ll);
      cams.set(id, nm);
      nm.addTo(cameraLayer);
    } else if (!m.getLatLng().equals(ll)) {
      m.setLatLng(ll);
    }
  }
  for (const [key, g] of groups) {
    let c = clusters.get(key);
    if (!c) {
      c = makeCluster(key);
      c.props = g.props;
      clusters.set(key, c);
      c.marker.setLatLng(g.ll).addTo(cameraLayer);
    } else {
      c.props = g.props;
      if (!c.marker.getLatLng().equals(g.ll)) c.marker.setLatLng(g.ll);
      styleCluster(c);
    }
  }
  if (test.ready && !test.painting && !test.firstPaint) firstPainted();
}

/** The first view's markers are in the DOM: the frame that shows them is painted after this one. */
function firstPainted() {
  test.painting = true;
  requestAnimationFrame(() => setTimeout(() => {
    test.firstPaint = { ms: Math.round(performance.now()), markers: cams.size, clusters: clusters.size + areas.size, mode: mode.kind };
    loadLandSoon();
    // Lazy providers list on first use: ask once (the events bring the result), for one stream, not all.
    fetch(api('streams?fields=id&limit=1')).catch(() => {});
  }, 0));
}

/** 1234 → 1.2k, 12345 → 12k (as supercluster abbreviates). */
const abbreviated = (n) => (n >= 10000 ? `${Math.round(n / 1000)}k` : n >= 1000 ? `${Math.round(n / 100) / 10}k` : String(n));

/** A cluster's look, the same for supercluster's and the host's: size by count, colour by its most interesting state. */
function styleClusterEl(el, n, st, label) {
  const size = n < 10 ? 34 : n < 100 ? 40 : 48;
  el.style.width = el.style.height = `${size}px`;
  el.style.marginLeft = el.style.marginTop = `${-size / 2}px`;
  el.textContent = abbreviated(n);
  el.dataset.count = String(n);
  el.dataset.state = st;
  el.classList.remove(...STATES.map((x) => `state-${x}`));
  el.classList.add(`state-${st}`);
  el.setAttribute('aria-label', label);
}

function styleCluster(c) {
  const el = c.marker.getElement();
  if (!el || !c.props) return;
  const n = c.props.point_count;
  const live = c.props.live || 0;
  styleClusterEl(el, n, BY_PRIORITY[c.props.p] || 'offline', `${plural(n, 'camera', 'cameras')}${live ? `, ${live} live` : ''}: zoom in`);
}

/** Up to `n` ids of a cluster's cameras (none if the index was built again since it was drawn). */
function leaves(c, n) {
  try {
    return index.getLeaves(c.id, n).map((f) => f.id);
  } catch {
    return [];
  }
}

function makeCluster(key) {
  const c = { id: key, props: null, marker: null };
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
    const n = c.props?.point_count || 0;
    const names = leaves(c, 8).map((id) => {
      const s = streams.get(id);
      return h('li', {}, h('span', { class: `dot state-${s ? shownState(s) : 'offline'}` }), ` ${s?.name || id}`);
    });
    if (n > names.length) names.push(h('li', { text: `and ${(n - names.length).toLocaleString('en')} more` }));
    return h('div', { class: 'tip' }, h('div', { class: 'tip-name', text: plural(n, 'camera', 'cameras') }), h('ul', {}, ...names));
  }, { direction: 'top', offset: [0, -16], opacity: 1, className: 'dss-tip' });
  return c;
}

/**
 * Zooms to where a cluster splits (supercluster knows the zoom); cameras
 * at one place never split: those are listed in a popup.
 */
function openCluster(c) {
  let z;
  try {
    z = index.getClusterExpansionZoom(c.id);
  } catch {
    z = map.getZoom() + 1; // the index was built again since: one level closer
  }
  if (z <= map.getMaxZoom() && z > map.getZoom()) {
    map.setView(c.marker.getLatLng(), z);
    return;
  }
  const ids = leaves(c, 100);
  const n = c.props?.point_count || ids.length;
  const list = h('ul', { class: 'tip' }, ...ids.map((id) => {
    const s = streams.get(id);
    return h('li', {}, h('button', {
      type: 'button', class: 'copy', text: s?.name || id, onclick: () => { map.closePopup(); openPlayer(id); },
    }));
  }));
  if (n > ids.length) list.append(h('li', { text: `and ${(n - ids.length).toLocaleString('en')} more` }));
  L.popup({ maxHeight: 260 }).setLatLng(c.marker.getLatLng()).setContent(list).openOn(map);
}

/** Whether camera `id` is a point of its own (not in a cluster) at zoom `z`. */
function aloneAt(id, s, z) {
  // About a metre around it: more than the index's precision (2^-30 of the world, under 0.04 m).
  const e = 1e-5;
  return index.getClusters([s.geo.lon - e, s.geo.lat - e, s.geo.lon + e, s.geo.lat + e], z)
    .some((f) => !f.properties.cluster && f.id === id);
}

/** Zooms until the stream is drawn alone, and pans it into view. */
function reveal(id) {
  const s = streams.get(id);
  if (!s?.geo) return false;
  const ll = L.latLng(s.geo.lat, s.geo.lon);
  let z = Math.round(map.getZoom());
  if (!isPhone(s)) {
    if (!passesFilter(s)) return false;
    if (indexDirty) buildIndex();
    while (z < map.getMaxZoom() && !aloneAt(id, s, z)) z++;
  } else if (!phones.has(id)) {
    return false;
  }
  if (z !== map.getZoom() || !map.getBounds().pad(-0.1).contains(ll)) map.setView(ll, z, { animate: false });
  draw();
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
  const s = streams.get(ev.id);
  if (!s) { adopt(ev); return; }
  const known = moving.has(ev.id);
  moving.add(ev.id);
  s.geo = { lat: ev.lat, lon: ev.lon };
  if (!inBox(sub.box, ev.lat, ev.lon) && player.id !== ev.id) {
    // Its last event: the host tells nothing more of a stream out of the box.
    remove(ev.id);
    return;
  }
  // A first position can turn a camera into a phone, or show a phone.
  if (!known || !phones.has(ev.id)) syncStream(ev.id);
  const p = phones.get(ev.id);
  if (!p) return;
  const ll = [ev.lat, ev.lon];
  p.marker.setLatLng(ll);
  p.points.push(ll);
  if (p.points.length > TRACK_POINTS) p.points.splice(0, p.points.length - TRACK_POINTS);
  p.line.setLatLngs(p.points);
}

/** id → its latest position, while the listing of a stream that moved into the box is read. */
const adopting = new Map();

/** A stream not held moved into the box (a phone coming this way): reads its listing once. */
async function adopt(ev) {
  if (!inBox(sub.box, ev.lat, ev.lon)) return;
  const reading = adopting.has(ev.id);
  adopting.set(ev.id, ev);
  if (reading) return;
  const es = sub.es;
  let d = null;
  try { d = await getJSON(api(`streams/${enc(ev.id)}`)); } catch { /* unlisted meanwhile */ }
  const last = adopting.get(ev.id);
  adopting.delete(ev.id);
  // A new subscription's snapshot has it, with its position, if it is in the new box.
  if (!d || es !== sub.es || streams.has(ev.id) || !inBox(sub.box, last.lat, last.lon)) return;
  moving.add(ev.id);
  upsert({ ...brief(d), geo: { lat: last.lat, lon: last.lon } });
}

// ---------------------------------------------------------------- list

/** id → <li> of the rows listed now. */
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

/** Whether a held stream belongs in the list: in view (on any copy of the world), or without a position. */
function listable(s, view, centre) {
  if (!s.geo) return true;
  const lon = s.geo.lon + 360 * Math.round((centre - s.geo.lon) / 360);
  return view.contains([s.geo.lat, lon]);
}

function makeRow(id) {
  const btn = h('button', { type: 'button', class: 'row' },
    h('span', { class: 'dot' }), h('span', { class: 'name' }), h('span', { class: 'right' }), h('span', { class: 'sub' }));
  btn.addEventListener('click', () => openPlayer(id, btn));
  btn.addEventListener('mouseenter', () => highlight(id, true));
  btn.addEventListener('mouseleave', () => highlight(id, false));
  const li = h('li', {}, btn);
  li.dataset.streamId = id;
  return li;
}

/** Updates a listed stream's row (which rows are listed is renderList's). */
function syncRow(id) {
  const li = rows.get(id);
  const s = streams.get(id);
  if (!li || !s) return;
  const btn = li.firstChild;
  const st = shownState(s);
  const phone = isPhone(s);
  btn.dataset.streamId = id;
  btn.dataset.state = st;
  li.dataset.state = st;
  btn.classList.toggle('is-open', player.id === id);
  btn.querySelector('.dot').className = `dot state-${st}`;
  btn.querySelector('.name').textContent = s.name || id;
  btn.querySelector('.right').replaceChildren(
    h('span', { class: `badge state-${st}`, text: st }), h('br'),
    s.viewers ? plural(s.viewers, 'viewer', 'viewers') : '');
  btn.querySelector('.sub').textContent = `${id}${phone ? ' · phone' : ''}${s.geo ? '' : ' · no position'}`;
  btn.setAttribute('aria-label', `${s.name || id}, ${st}${s.viewers ? `, ${plural(s.viewers, 'viewer', 'viewers')}` : ''}${phone ? ', phone' : ''}`);
}

/**
 * The list: the streams in view and those without a position that pass the
 * filter, by name, at most LIST_MAX rows (a list of thousands helps no one,
 * and costs the page as much as the map).
 */
function renderList() {
  const t0 = performance.now();
  const view = map.getBounds();
  const centre = view.getCenter().lng;
  let total = 0;
  const pass = [];
  for (const s of streams.values()) {
    if (!listable(s, view, centre)) continue;
    total++;
    if (passesFilter(s)) pass.push(s);
  }
  let show = pass;
  if (pass.length > LIST_MAX) {
    // Too many: those without a position (listed nowhere else), then the nearest the map's centre.
    const c = view.getCenter();
    const k = Math.cos((c.lat * Math.PI) / 180);
    const far = (s) => {
      if (!s.geo) return -1;
      const dx = (s.geo.lon + 360 * Math.round((centre - s.geo.lon) / 360) - c.lng) * k;
      const dy = s.geo.lat - c.lat;
      return dx * dx + dy * dy;
    };
    show = pass.map((s) => [far(s), s]).sort((a, b) => a[0] - b[0]).slice(0, LIST_MAX).map(([, s]) => s);
  }
  show.sort((a, b) => byName(a.name || a.id, b.name || b.id) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const keep = new Set(show.map((s) => s.id));
  for (const [id, li] of rows) {
    if (!keep.has(id)) { li.remove(); rows.delete(id); }
  }
  const list = $('#list');
  const order = show.map((s) => {
    let li = rows.get(s.id);
    if (!li) { li = makeRow(s.id); rows.set(s.id, li); }
    syncRow(s.id);
    return li;
  });
  // Appending moves nodes: only when the order changed, keeping the focused row focused.
  const now = [...list.children];
  if (now.length !== order.length || now.some((li, i) => li !== order[i])) {
    const focused = document.activeElement;
    list.append(...order);
    if (focused && list.contains(focused)) focused.focus({ preventScroll: true });
  }
  const counted = pass.length === total ? plural(total, 'stream', 'streams') : `${pass.length.toLocaleString('en')} of ${plural(total, 'stream', 'streams')}`;
  if (mode.kind === 'overview' && shownCensus) {
    // Only counted by area: listed (and searched, filtered) once zoomed in to a box of few enough.
    const a = areaCount();
    const filtered = filter.q || filter.provider || filter.state;
    $('#shown').textContent = `${a.approx ? 'About ' : ''}${plural(a.n, 'stream', 'streams')} in this area — zoom in to list them`
      + `${filtered ? ' (search and filters apply to the streams listed)' : ''}`
      + `${show.length ? `; ${plural(show.length, 'stream', 'streams')} without a position or playing listed below` : ''}`;
  } else {
    $('#shown').textContent = `${counted} in view${pass.length > show.length ? `; the ${show.length} nearest the centre listed (zoom in or search for the others)` : ''}`;
  }
  listMs = performance.now() - t0;
}
/** How long the last list took (ms): a list over the whole world is redone at most a fifth of the time. */
let listMs = 0;
let listTimer = null;
function scheduleList() {
  if (listTimer) return;
  listTimer = setTimeout(() => { listTimer = null; renderList(); }, Math.max(150, 4 * listMs));
}

function applyFilter() {
  indexDirty = true;
  draw();
  renderList();
  scheduleCounts();
}

function highlight(id, on) {
  const m = cams.get(id) || phones.get(id)?.marker;
  if (!m) return;
  if (on) m.openTooltip();
  else m.closeTooltip();
}

/** The header's figures, over the streams held (the map's area, and those without a position). */
const scheduleCounts = throttle(() => {
  let live = 0; let viewers = 0; let phonesOnline = 0;
  // Overview: the host's count of the box, and the streams held without a position (a position is in the count).
  const counted = mode.kind === 'overview' && shownCensus;
  if (counted) { live = shownCensus.live; viewers = shownCensus.viewers; }
  for (const s of streams.values()) {
    if (counted && s.geo) continue;
    if (s.state === 'live') live++;
    viewers += s.viewers || 0;
    if (isPhone(s) && s.online) phonesOnline++;
  }
  $('#n-live').textContent = live;
  $('#n-viewers').textContent = viewers;
  $('#n-phones').textContent = phonesOnline;
  $('#l-viewers').textContent = viewers === 1 ? 'viewer' : 'viewers';
  $('#l-phones').textContent = phonesOnline === 1 ? 'phone' : 'phones';
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

/** The subscription: its EventSource, the box it was opened with, when. */
const sub = { es: null, box: null, openedAt: 0, count: 0 };
/** What each snapshot brought (for the tests: tests/browser/scale.test.mjs). */
const snapshots = [];

function upsert(s) {
  if (s.geo && !inBox(sub.box, s.geo.lat, s.geo.lon) && player.id !== s.id) {
    // Out of the box (a listing that moved it away): nothing more will be told of it.
    if (streams.has(s.id)) remove(s.id);
    return;
  }
  const old = streams.get(s.id);
  streams.set(s.id, old ? { ...old, ...s } : s);
  syncStream(s.id);
  if (player.id === s.id) showPlayerState();
}

function remove(id) {
  streams.delete(id);
  syncStream(id);
}

/** Streams held outside a new box: the open player's, and those without a position from the small providers. */
const kept = (s) => s.id === player.id || isUnplaced(s);

function onSnapshot(snap, e) {
  const t0 = performance.now();
  clockSkew = (snap.time_ms || Date.now()) - Date.now();
  providers.clear();
  for (const p of snap.providers || []) providers.set(p.id, p);
  // The box's streams replace those of the previous box.
  const seen = new Set();
  for (const s of snap.streams || []) {
    seen.add(s.id);
    streams.set(s.id, s);
  }
  for (const [id, s] of streams) if (!seen.has(id) && !kept(s)) streams.delete(id);
  for (const id of [...phones.keys()]) syncPhone(id);
  for (const s of streams.values()) if (isPhone(s)) syncPhone(s.id);
  for (const [id, m] of cams) {
    const s = streams.get(id);
    const el = m.getElement();
    if (s && el) decorate(el, s);
  }
  indexDirty = true;
  renderProviders();
  if (!fitted) {
    fitted = true;
    fitToMarkers();
  }
  startUnplaced();
  test.ready = true;
  // The host's clusters (an overview zoomed into) were drawn until the box's own streams came.
  shownCensus = null;
  drawAreas();
  draw();
  scheduleList(); // after the markers are painted
  scheduleCounts();
  if (player.id) showPlayerState();
  if (tip.id) fillTip();
  snapshots.push({
    bbox: bboxParam(sub.box),
    streams: seen.size,
    chars: e?.data?.length || 0,
    ms: Math.round(performance.now() - sub.openedAt), // from opening the subscription to its snapshot drawn
    handled_ms: Math.round(performance.now() - t0),
  });
  if (snapshots.length > 50) snapshots.shift();
}

const handlers = {
  snapshot: onSnapshot,
  stream(ev) {
    const s = streams.get(ev.id);
    if (!s) return;
    const before = shownState(s);
    s.state = ev.state;
    s.viewers = ev.viewers;
    // Viewers alone do not change a cluster: no new index for them.
    syncStream(ev.id, { regroup: shownState(s) !== before });
    if (player.id === ev.id) showPlayerState();
  },
  listed(s) { upsert(s); },
  unlisted(ev) { if (streams.has(ev.id)) remove(ev.id); },
  provider(p) {
    const old = providers.get(p.id);
    if (p.removed) providers.delete(p.id);
    else providers.set(p.id, p);
    scheduleProviders();
    // Its streams without a position, again: when it had some, or its listing grew or shrank.
    if (p.removed || unplaced.has(p.id) || old?.stream_count !== p.stream_count) scheduleUnplaced(1000, [p.id]);
    // A stream is a phone by its provider's module.
    if (p.module !== old?.module) for (const s of streams.values()) if (s.provider === p.id) syncStream(s.id);
  },
  phone(ev) {
    const s = streams.get(ev.id);
    if (!s) {
      // A registered phone without a position comes on line: its row is from its provider's listing.
      const provider = ev.id.split('-')[0];
      if (providers.has(provider)) scheduleUnplaced(1000, [provider]);
      return;
    }
    s.online = ev.online;
    syncStream(ev.id);
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

/** The box for the view now: the view padded on every side, centred on the first copy of the world. */
const wantedBox = () => boxOf(map.wrapLatLngBounds(map.getBounds().pad(BOX_PAD)));

/** (Re)subscribes to `box`; its snapshot replaces what the old box held (and the host's clusters drawn). */
function subscribe(box) {
  if (sub.es) sub.es.close();
  stopOverview();
  mode.kind = 'detailed';
  const es = new EventSource(api(`events?bbox=${bboxParam(box)}`));
  Object.assign(sub, { es, box, openedAt: performance.now(), count: sub.count + 1 });
  const conn = $('#conn');
  conn.title = 'Live updates';
  es.addEventListener('open', () => {
    if (es !== sub.es) return;
    conn.dataset.conn = 'open';
    conn.textContent = 'live';
  });
  es.addEventListener('error', () => {
    if (es !== sub.es) return;
    // The browser reconnects by itself (same box) and gets a new snapshot.
    const closed = es.readyState === EventSource.CLOSED;
    conn.dataset.conn = closed ? 'error' : 'connecting';
    conn.textContent = closed ? 'disconnected' : 'reconnecting…';
    // Given up: the view is counted again (it may be an overview by now).
    if (closed) setTimeout(() => { if (sub.es === es) decide(); }, 5000);
  });
  for (const [name, fn] of Object.entries(handlers)) {
    es.addEventListener(name, (e) => {
      if (es !== sub.es) return; // a box left behind (events still in flight)
      let data;
      try { data = JSON.parse(e.data); } catch { return; }
      fn(data, e);
    });
  }
}

/**
 * After a pan or zoom has settled. Detailed: a new box only when the view
 * has left its box, or is so much smaller (zoomed in) that the box would
 * hold far more than the view needs. Overview: the host's clusters again
 * unless the view is still inside their box at the same zoom.
 */
let moveTimer = null;
function onMoved() {
  clearTimeout(moveTimer);
  moveTimer = setTimeout(() => {
    if (!mode.kind) {
      // The first decision is under way, or was dropped by a move (onMoveStart).
      if (!mode.pending) decide();
      return;
    }
    const view = map.getBounds();
    let stay;
    if (mode.kind === 'detailed') {
      const narrow = view.getEast() - view.getWest() < sub.box.width / BOX_SHRINK;
      stay = sub.es && covers(sub.box, view) && !narrow;
    } else {
      stay = census && covers(census.box, view) && map.getZoom() === census.zoom;
    }
    if (!stay) decide();
    else if (mode.pending) {
      // Back where it was before a decision came: that decision is dropped.
      mode.seq++;
      mode.pending?.abort();
      mode.pending = null;
    }
  }, MOVE_DEBOUNCE_MS);
}

/**
 * A pan or zoom begins (a second drag, often while the first one's inertia
 * still moves the map): no box is checked or counted until it settles, so
 * that two quick drags subscribe once, to where they end.
 */
function onMoveStart() {
  clearTimeout(moveTimer);
  if (mode.pending) {
    mode.seq++;
    mode.pending.abort();
    mode.pending = null;
  }
}

// -------------------------------------------------------------- overview

/** What the map shows: 'detailed' (the box's streams, subscribed) or 'overview' (the host's clusters); null at first. */
const mode = { kind: null, seq: 0, pending: null, refreshTimer: null, failures: 0 };
/** The last count of a box (/api/clusters): { url, box, grid, zoom, etag, at, total, cells, live, viewers, bytes }. */
let census = null;
/** The count whose clusters are drawn now (overview, or an overview until the box's snapshot comes). */
let shownCensus = null;
/** Grid cell (`box grid col,row`) → { cell, marker } of the host's clusters drawn now. */
const areas = new Map();
/** Per count of a box drawn as an overview (for the tests: tests/browser/scale.test.mjs). */
const overviews = [];

/** The host's grid for `box`: cells of about AREA_PX on their shorter side at this zoom. */
function gridFor(box) {
  const z = map.getZoom();
  const a = map.project([box.n, box.w], z);
  const b = map.project([box.s, box.w + box.width], z);
  const side = Math.min(Math.abs(b.x - a.x), Math.abs(b.y - a.y));
  return Math.max(1, Math.min(128, Math.round(side / AREA_PX)));
}

/**
 * Asks the host to count `box`'s streams on a grid. With `etag` (the same
 * URL asked before), { status: 304 } when nothing changed.
 */
async function askClusters(box, grid, { etag = null, signal } = {}) {
  const url = api(`clusters?bbox=${bboxParam(box)}&grid=${grid}`);
  const headers = { accept: 'application/json' };
  // Set by hand, the browser's cache stays out of it and the 304 comes here.
  if (etag) headers['if-none-match'] = etag;
  const t0 = performance.now();
  const zoom = map.getZoom();
  const r = await fetch(url, { headers, cache: 'no-store', signal });
  if (r.status === 304) return { status: 304 };
  if (!r.ok) {
    const e = new Error(`${url}: HTTP ${r.status}`);
    e.status = r.status;
    throw e;
  }
  const text = await r.text();
  const answer = JSON.parse(text);
  const cells = Array.isArray(answer.clusters) ? answer.clusters : [];
  let live = 0;
  let viewers = 0;
  for (const c of cells) {
    live += c.states?.live || 0;
    viewers += c.viewers || 0;
  }
  return {
    status: 200, url, box, grid, zoom, etag: r.headers.get('etag'), at: performance.now(),
    total: answer.total || 0, cells, live, viewers, bytes: text.length, ms: Math.round(performance.now() - t0),
  };
}

/**
 * What the last count tells of `box`: 'small' (it lies in the box counted,
 * and the cells it meets hold at most DETAIL_MAX streams: no need to ask),
 * 'many' (the cells inside it, or the density of the box counted, say more
 * than DETAIL_MAX: ask for the clusters to draw at once), or null (ask for
 * a coarse count first: a few hundred bytes where the clusters of a small
 * box would be tens of kilobytes for nothing).
 */
function foresee(box) {
  const c = census;
  if (!c || performance.now() - c.at > CENSUS_MAX_AGE_MS) return null;
  if (boxCovers(c.box, box)) {
    let most = 0;
    let least = 0;
    for (const cell of c.cells) {
      if (!boxMeets(box, cell.bbox)) continue;
      most += cell.count;
      const [w, s, e, n] = cell.bbox;
      if (inBox(box, s, w) && inBox(box, n, e)) least += cell.count;
    }
    return most <= DETAIL_MAX ? 'small' : least > DETAIL_MAX ? 'many' : null;
  }
  // Elsewhere, or zoomed out: as dense as the box counted (a guess, which only chooses the grid).
  const area = (b) => Math.max(1e-9, b.width * (b.n - b.s));
  return (c.total * area(box)) / area(c.box) > DETAIL_MAX ? 'many' : null;
}

/**
 * The view's box, counted (unless known small): subscribed to when it
 * holds at most DETAIL_MAX streams, else drawn as the host's clusters.
 * Only the latest decision counts (a quicker pan drops those before).
 */
async function decide() {
  const seq = ++mode.seq;
  mode.pending?.abort();
  mode.pending = null;
  const box = wantedBox();
  const t0 = performance.now();
  const guess = foresee(box);
  if (guess === 'small') {
    decided({ bbox: bboxParam(box), total: null, chars: 0, fetch_ms: 0, mode: 'detailed', at: Math.round(t0) });
    subscribe(box);
    return;
  }
  const pending = new AbortController();
  mode.pending = pending;
  let answer;
  let chars = 0;
  try {
    // Likely to be detailed (or unknown): a coarse count first. Likely an
    // overview (or too many after all): the grid to draw.
    const display = gridFor(box);
    answer = await askClusters(box, guess === 'many' ? display : Math.min(display, DECIDE_GRID), { signal: pending.signal });
    if (answer.total > DETAIL_MAX && answer.grid !== display) {
      chars = answer.bytes;
      answer = await askClusters(box, display, { signal: pending.signal });
    }
  } catch (e) {
    if (seq !== mode.seq) return;
    mode.pending = null;
    if (e.status === 404) {
      // A host without /api/clusters: every box is subscribed to, as before it existed.
      console.warn('no /api/clusters on this host: every view is listed');
      census = { box: { w: -180, s: -90, e: 180, n: 90, width: 360 }, cells: [], at: Infinity, total: 0 };
      subscribe(box);
      return;
    }
    // The host is away (or failed): asked again soon; what is drawn stays.
    const conn = $('#conn');
    conn.dataset.conn = 'connecting';
    conn.textContent = 'reconnecting…';
    setTimeout(() => { if (seq === mode.seq) decide(); }, Math.min(30_000, 1000 * 2 ** mode.failures++));
    return;
  }
  if (seq !== mode.seq) return;
  mode.pending = null;
  mode.failures = 0;
  census = answer;
  const detailed = answer.total <= DETAIL_MAX;
  decided({
    bbox: bboxParam(box), total: answer.total, chars: chars + answer.bytes, fetch_ms: Math.round(performance.now() - t0),
    mode: detailed ? 'detailed' : 'overview', at: Math.round(t0),
  });
  if (detailed) subscribe(box);
  else showOverview(answer, t0);
}

/** What each decision was (for the tests): the box, its count (null: known small without asking), the mode. */
const decisions = [];
function decided(d) {
  decisions.push(d);
  if (decisions.length > 50) decisions.shift();
}

/** Overview mode: the box's streams are let go, the host's clusters drawn, counted again every OVERVIEW_REFRESH_MS. */
function showOverview(answer, t0) {
  if (sub.es) sub.es.close();
  Object.assign(sub, { es: null, box: null });
  mode.kind = 'overview';
  // Only the open player's and those without a position stay (pollPlayer keeps the player's current).
  let dropped = 0;
  for (const [id, s] of streams) {
    if (!kept(s)) { streams.delete(id); dropped++; }
  }
  if (dropped) {
    for (const id of [...phones.keys()]) syncPhone(id);
    indexDirty = true;
  }
  shownCensus = answer;
  draw();
  drawAreas();
  if (!fitted) {
    fitted = true;
    fitToMarkers(answer);
  }
  if (!test.ready) {
    test.ready = true;
    if (!test.painting && !test.firstPaint) firstPainted();
  }
  if (!providers.size) loadProviders();
  const conn = $('#conn');
  conn.dataset.conn = 'open';
  conn.textContent = 'overview';
  conn.title = `Zoomed out: the streams are counted by area every ${OVERVIEW_REFRESH_MS / 1000} s; zoom in for live updates`;
  scheduleList();
  scheduleCounts();
  const record = {
    bbox: bboxParam(answer.box), grid: answer.grid, total: answer.total, clusters: answer.cells.length,
    chars: answer.bytes, fetch_ms: answer.ms, asked: Math.round(t0), drawn: Math.round(performance.now()), painted: null,
  };
  overviews.push(record);
  if (overviews.length > 50) overviews.shift();
  requestAnimationFrame(() => setTimeout(() => { record.painted = Math.round(performance.now()); }, 0));
  clearTimeout(mode.refreshTimer);
  mode.refreshTimer = setTimeout(refreshOverview, OVERVIEW_REFRESH_MS);
}

/** Leaves overview mode (the clusters drawn stay until the next snapshot replaces them). */
function stopOverview() {
  clearTimeout(mode.refreshTimer);
  mode.refreshTimer = null;
}

/**
 * The overview's box counted again (the same URL, with its ETag): a 304
 * keeps what is drawn; a box that now holds few enough is subscribed to.
 * Providers have no events in overview mode: read again too. Resolves to
 * the status (for the tests).
 */
async function refreshOverview() {
  clearTimeout(mode.refreshTimer);
  mode.refreshTimer = null;
  if (mode.kind !== 'overview' || !census) return null;
  if (mode.pending) {
    // A new view is being counted: that answer replaces this one (or the timer tries again).
    mode.refreshTimer = setTimeout(refreshOverview, OVERVIEW_REFRESH_MS);
    return null;
  }
  const seq = mode.seq;
  const c = census;
  let answer;
  loadProviders();
  try {
    answer = await askClusters(c.box, c.grid, { etag: c.etag });
  } catch {
    answer = null;
  }
  if (seq !== mode.seq || mode.kind !== 'overview' || census !== c) return null;
  const conn = $('#conn');
  if (!answer) {
    conn.dataset.conn = 'connecting';
    conn.textContent = 'reconnecting…';
    mode.refreshTimer = setTimeout(refreshOverview, OVERVIEW_REFRESH_MS);
    return 'error';
  }
  conn.dataset.conn = 'open';
  conn.textContent = 'overview';
  if (answer.status === 304) {
    c.at = performance.now();
    mode.refreshTimer = setTimeout(refreshOverview, OVERVIEW_REFRESH_MS);
    return 304;
  }
  census = { ...answer, zoom: c.zoom };
  if (answer.total <= DETAIL_MAX) subscribe(c.box);
  else showOverview(census, performance.now());
  return 200;
}

let providersBusy = false;
let providersRead = '';
/** The providers, without events to tell them (overview mode); the table redone only when they changed. */
async function loadProviders() {
  if (providersBusy) return;
  providersBusy = true;
  try {
    const list = await getJSON(api('providers'), { cache: 'no-store' });
    if (mode.kind !== 'overview' || !Array.isArray(list)) return;
    const read = JSON.stringify(list);
    if (read === providersRead && providers.size === list.length) return;
    providersRead = read;
    providers.clear();
    for (const p of list) providers.set(p.id, p);
    scheduleProviders();
    startUnplaced();
  } catch { /* kept as they are until the next reading */ } finally {
    providersBusy = false;
  }
}

/** The most interesting state of a host's cluster. */
function areaState(cell) {
  let best = 'idle';
  for (const [st, n] of Object.entries(cell.states || {})) {
    if (n > 0 && (PRIORITY[st] ?? -1) > PRIORITY[best]) best = st;
  }
  return best;
}

/** A host's cluster: where its streams are, on the copy of the world around `centre`. */
const areaLatLng = (cell, centre) => L.latLng(cell.lat, cell.lon + 360 * Math.round((centre - cell.lon) / 360));

/** Zooms to a host's cluster's streams (their extent), at least one level closer. */
function openArea(cell) {
  const [w, s, e, n] = cell.bbox;
  const east = e < w ? e + 360 : e; // across the antimeridian
  const shift = 360 * Math.round((map.getCenter().lng - (w + east) / 2) / 360);
  const bounds = L.latLngBounds([s, w + shift], [n, east + shift]);
  const pad = mapPadding();
  const room = L.point(pad.paddingTopLeft).add(pad.paddingBottomRight);
  const z = Math.min(AREA_MAX_ZOOM, map.getBoundsZoom(bounds, false, room));
  if (z > map.getZoom()) map.fitBounds(bounds, { ...pad, maxZoom: AREA_MAX_ZOOM });
  else map.setView(areaLatLng(cell, map.getCenter().lng), map.getZoom() + 1);
}

function areaTip(cell) {
  const states = Object.entries(cell.states || {}).filter(([, n]) => n > 0)
    .sort((a, b) => (PRIORITY[b[0]] ?? 0) - (PRIORITY[a[0]] ?? 0));
  return h('div', { class: 'tip' },
    h('div', { class: 'tip-name', text: plural(cell.count, 'stream', 'streams') }),
    h('ul', {}, ...states.map(([st, n]) => h('li', {}, h('span', { class: `dot state-${st}` }), ` ${n.toLocaleString('en')} ${st}`))),
    h('div', { class: 'tip-meta', text: `${plural(cell.viewers || 0, 'viewer', 'viewers')} · click to zoom in` }));
}

/** A host's cluster's marker; `a.cell` is its latest count (a refresh restyles the marker, keeping its tooltip and focus). */
function makeArea(a, ll) {
  a.marker = L.marker(ll, {
    icon: L.divIcon({ className: 'dss-cluster dss-area', iconSize: null, html: '' }),
    keyboard: true,
  });
  const open = () => openArea(a.cell);
  a.marker.on('add', () => {
    styleArea(a);
    a.marker.getElement().addEventListener('keydown', (e) => onMarkerKey(e, open));
  });
  a.marker.on('click', open);
  a.marker.bindTooltip(() => areaTip(a.cell), { direction: 'top', offset: [0, -16], opacity: 1, className: 'dss-tip' });
  return a;
}

function styleArea(a) {
  const el = a.marker.getElement();
  if (!el) return;
  const { count, states } = a.cell;
  const live = states?.live || 0;
  styleClusterEl(el, count, areaState(a.cell), `${plural(count, 'stream', 'streams')}${live ? `, ${live} live` : ''}: zoom in`);
}

/**
 * Which cell of the host's grid a cluster is: its streams' mean position
 * lies in its cell, so the same cell of a box counted again has the same
 * key (its marker is kept).
 */
function areaKey(census, cell) {
  const { box, grid } = census;
  const idx = (offset, size) => Math.min(grid - 1, Math.max(0, Math.floor((offset / size) * grid)));
  const col = idx((((cell.lon - box.w) % 360) + 360) % 360, box.width);
  const row = idx(cell.lat - box.s, box.n - box.s || 1);
  return `${bboxParam(box)} ${grid} ${col},${row}`;
}

/** The host's clusters in view (and DRAW_PAD around): those drawn already are kept (restyled), the rest made or removed. */
function drawAreas() {
  const want = new Map();
  if (shownCensus) {
    const view = map.getBounds().pad(DRAW_PAD);
    const centre = map.getCenter().lng;
    for (const cell of shownCensus.cells) {
      const ll = areaLatLng(cell, centre);
      if (!view.contains(ll)) continue;
      // (A mean on a cell's edge, rounded across it, would share its neighbour's key: made unique, in the answer's order.)
      let key = areaKey(shownCensus, cell);
      while (want.has(key)) key += '+';
      want.set(key, { cell, ll });
    }
  }
  for (const [key, a] of areas) {
    if (!want.has(key)) { cameraLayer.removeLayer(a.marker); areas.delete(key); }
  }
  for (const [key, { cell, ll }] of want) {
    const a = areas.get(key);
    if (!a) {
      const na = makeArea({ cell, marker: null }, ll);
      areas.set(key, na);
      na.marker.addTo(cameraLayer);
    } else {
      if (a.cell !== cell) { a.cell = cell; styleArea(a); }
      if (!a.marker.getLatLng().equals(ll)) a.marker.setLatLng(ll);
    }
  }
}

/** The streams the overview counts in view: { n, approx } (approx: some cells lie across its edge). */
function areaCount() {
  let n = 0;
  let approx = false;
  if (!shownCensus) return { n, approx };
  const view = boxOf(map.getBounds());
  for (const cell of shownCensus.cells) {
    if (!boxMeets(view, cell.bbox)) continue;
    const [w, s, e, nn] = cell.bbox;
    const inside = inBox(view, s, w) && inBox(view, nn, e) && (((e - w) % 360) + 360) % 360 <= view.width;
    if (!inside) approx = true;
    n += cell.count;
  }
  return { n, approx };
}

// ------------------------------------------------ streams without a position

/**
 * A box never holds a stream without a position: those of the providers
 * small enough to read whole (registered phones, cameras of a small site)
 * come from /api/streams?provider=ID, read again when the provider changes,
 * and every UNPLACED_REFRESH_MS for their state (no event tells it; an
 * unchanged listing is a 304 through its ETag).
 */
const unplacedWanted = new Set();
let unplacedTimer = null;
let unplacedDue = Infinity;
let unplacedBusy = false;

/** Once the providers are known (a snapshot, or /api/providers in overview mode): their streams without a position. */
function startUnplaced() {
  if (unplacedStarted || !providers.size) return;
  unplacedStarted = true;
  scheduleUnplaced(0, [...providers.keys()]);
}

function scheduleUnplaced(ms, ids) {
  for (const id of ids) unplacedWanted.add(id);
  const due = Date.now() + ms;
  if (unplacedTimer && unplacedDue <= due) return;
  clearTimeout(unplacedTimer);
  unplacedDue = due;
  unplacedTimer = setTimeout(loadUnplaced, ms);
}

async function loadUnplaced() {
  unplacedTimer = null;
  unplacedDue = Infinity;
  if (unplacedBusy) { scheduleUnplaced(1000, []); return; }
  unplacedBusy = true;
  const wanted = [...unplacedWanted];
  unplacedWanted.clear();
  try {
    for (const id of wanted) {
      const p = providers.get(id);
      const n = p?.stream_count ?? 0;
      const small = p && n > 0 && n <= UNPLACED_PROVIDER_MAX && !p.lazy_pending && p.state !== 'disabled';
      const had = unplaced.get(id) || new Set();
      const now = new Set();
      if (small) {
        let list;
        try {
          list = await getJSON(api(`streams?provider=${enc(id)}`), { cache: 'no-cache' });
        } catch {
          continue; // kept as they are until the next reading
        }
        for (const s of list) {
          if (s.geo) continue; // in a box, or not on this map
          now.add(s.id);
        }
        if (now.size) unplaced.set(id, now);
        else unplaced.delete(id);
        for (const s of list) if (now.has(s.id)) upsert(s);
      } else {
        unplaced.delete(id);
      }
      for (const sid of had) {
        const s = streams.get(sid);
        if (!now.has(sid) && s && !s.geo && sid !== player.id) remove(sid);
      }
    }
  } finally {
    unplacedBusy = false;
  }
  if (unplaced.size) scheduleUnplaced(UNPLACED_REFRESH_MS, [...unplaced.keys()]);
}

// -------------------------------------------------------------- player

const player = {
  id: null, hls: null, attempt: 0, started: false, retryTimer: null, opener: null,
  detail: null, url: null, session: 0, recovered: false, lastState: null, poll: null,
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
  clearInterval(player.poll);
  player.poll = setInterval(() => pollPlayer(id), PLAYER_POLL_MS);
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

/** The open stream's state when no event tells it: it has no position, or is out of the box. */
async function pollPlayer(id) {
  const s = streams.get(id);
  if (player.id !== id || (s?.geo && inBox(sub.box, s.geo.lat, s.geo.lon))) return;
  let d;
  try { d = await getJSON(api(`streams/${enc(id)}`)); } catch { return; }
  if (player.id === id) upsert(brief(d));
}

function markOpen(id, on) {
  const m = cams.get(id) || phones.get(id)?.marker;
  m?.getElement()?.classList.toggle('is-open', on);
  rows.get(id)?.firstChild.classList.toggle('is-open', on);
}

function closePlayer({ restoreFocus = true } = {}) {
  if (!player.id) return;
  stopPlayback();
  clearInterval(player.poll);
  player.poll = null;
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

// The view's markers at once (the index, or the host's clusters, are there); its list soon; a new box once the move settles.
map.on('zoomend moveend', () => {
  draw();
  drawAreas();
  scheduleList();
  onMoved();
});
map.on('movestart zoomstart', onMoveStart);

function legend() {
  const el = $('#legend');
  el.append(...['live', 'starting', 'stopping', 'idle', 'offline', 'backoff', 'refused'].map((st) =>
    h('div', {}, h('span', { class: `dot state-${st}` }), st)));
  el.append(h('div', {}, h('span', { class: 'phone-key' }), 'phone'));
}

// ------------------------------------------------------------ test hook

/** Cameras held: with a position, not phones. */
const heldCameras = () => [...streams.values()].filter((s) => s.geo && !isPhone(s));

/** For tests/browser/page.test.mjs and scale.test.mjs: read-only views of what is drawn, and a way to move the map. */
const test = {
  ready: false,
  /** { ms, markers, clusters, mode }: the first view's markers painted, ms after navigation started. */
  firstPaint: null,
  painting: false,
  /** Cameras in the last index built. */
  indexed: 0,
  /** Per snapshot: its box, streams, size (characters), ms from subscribing to drawn. */
  snapshots,
  /** The box subscribed to now (W,S,E,N as sent); null in overview mode. */
  box: () => (sub.box ? bboxParam(sub.box) : null),
  /** 'detailed' (subscribed to the box) or 'overview' (the host's clusters drawn). */
  mode: () => mode.kind,
  /** Per overview drawn: its box, grid, total, clusters, size (characters), page times (asked, drawn, painted). */
  overviews,
  /** Per decision on a view: its box, count (null when known small), mode, time (page ms). */
  decisions,
  /** The host's clusters drawn now: their counts. */
  areas: () => [...areas.values()].map((a) => a.cell.count),
  /** Counts the overview's box again now (as its timer would): 304, 200, 'error', or null outside overview mode. */
  refreshOverview,
  /** Subscriptions opened so far. */
  subscriptions: () => sub.count,
  /** Streams held now, and how many of those with a position are outside the box (the player's only). */
  held: () => ({
    streams: streams.size,
    outside: [...streams.values()].filter((s) => s.geo && !inBox(sub.box, s.geo.lat, s.geo.lon)).length,
  }),
  /** Every camera held (drawn alone, in a cluster, or off-screen): the box's cameras. */
  markerIds: () => heldCameras().map((s) => s.id).sort(),
  /** Phones with a marker now. */
  phoneIds: () => [...phones.keys()].sort(),
  phoneLatLng: (id) => {
    const m = phones.get(id)?.marker;
    if (!m) return null;
    const ll = m.getLatLng();
    return { lat: ll.lat, lon: ll.lng };
  },
  /** What the map shows now: cameras alone, clusters (their counts), held but off-screen, filtered out. */
  rendered: () => {
    if (drawTimer || indexDirty) draw();
    const inClusters = [...clusters.values()].reduce((a, c) => a + c.props.point_count, 0);
    const held = heldCameras();
    const filteredOut = held.filter((s) => !passesFilter(s)).length;
    return {
      alone: [...cams.keys()].sort(),
      clusters: [...clusters.values()].map((c) => c.props.point_count),
      elsewhere: held.length - cams.size - inClusters - filteredOut,
      filteredOut,
    };
  },
  reveal,
  state: (id) => (streams.has(id) ? shownState(streams.get(id)) : null),
  view: () => ({ lat: map.getCenter().lat, lon: map.getCenter().lng, zoom: map.getZoom() }),
  setView: (lat, lon, zoom) => { map.setView([lat, lon], zoom ?? map.getZoom(), { animate: false }); return true; },
};
window.dssTest = test;

// ---------------------------------------------------------------- start

legend();
await loadWeb();
decide();

#!/usr/bin/env node
// The DSS web page against a host of many streams (tests/tests/page_scale.rs
// starts one with 100,000), in a real browser (Debian's Chromium, driven by
// playwright-core).
//
//   node tests/browser/scale.test.mjs --page http://127.0.0.1:8080/ \
//        --total 100000 --area W,S,E,N --out DIR [--chromium PATH]
//
// --total: the streams the host lists; --area: where they are (the distant
// pans stay inside it). The page must open on a view ([web] center, zoom)
// that holds a few hundred of them. Measures and checks: the first paint
// (the first snapshot's markers painted, at most 2 s after navigation);
// that a pan inside the subscribed box fetches nothing, and a pan out of
// it (a drag, a jump to a distant place) one new box with only that view's
// streams; that the page answers clicks at once; that zoomed out over the
// whole area it draws the host's clusters (/api/clusters) and never
// subscribes to the area (few bytes, drawn within 1 s, no long task),
// counts again with a 304, and lists a small box again once zoomed in; no
// console errors, nothing fetched from outside. Prints one line per check
// and the figures (first paint, streams and snapshot sizes per view, bytes
// of the overview, long tasks), exits 1 on any failure.

import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import * as tap from './tap.mjs';

// ------------------------------------------------------------ arguments

const args = tap.args(
  'scale.test',
  'node scale.test.mjs --page URL --area W,S,E,N --out DIR [--total N] [--chromium PATH]',
  {
    page: { type: 'string' },
    out: { type: 'string' },
    total: { type: 'string', default: '100000' },
    area: { type: 'string' },
    chromium: { type: 'string', default: process.env.CHROMIUM || '/usr/bin/chromium' },
  },
  ['page', 'area', 'out'],
);
args.total = Number(args.total);
args.area = args.area.split(',').map(Number);
if (args.area.length !== 4 || args.area.some((x) => !Number.isFinite(x)) || !Number.isFinite(args.total)) {
  console.error('scale.test: --area takes W,S,E,N and --total a number');
  process.exit(2);
}
mkdirSync(args.out, { recursive: true });

/** What one view may bring: a padded box of a city-sized view, never a sizeable part of the total. */
const VIEW_MIN = 50;
const VIEW_MAX = Math.min(5000, args.total / 10);
const FIRST_PAINT_MS = 2000;
/** A click answered (the map zoomed, a tooltip shown) within this. */
const ANSWER_MS = 1000;
/** Zoomed out over the whole area: drawn within this of the zoom, from at most this many bytes, no task longer. */
const OVERVIEW_MS = 1000;
const OVERVIEW_BYTES = 200 * 1024;
const OVERVIEW_TASK_MS = 200;

// ---------------------------------------------------------- reporting

const { ok, fail, note, check, assert } = tap;
const figures = [];
function figure(text) { figures.push(text); note(text); }
const kb = (chars) => `${(chars / 1024).toFixed(0)} KiB`;

tap.deadline(300);

// ----------------------------------------------------------- the browser

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]', '::1']);
/** Every request: url, when (ms since the run started). */
const requests = [];
const consoleErrors = [];
const started = Date.now();

let browser;
try {
  browser = await chromium.launch({ executablePath: args.chromium, headless: true, args: ['--no-sandbox'] });
} catch (e) {
  console.log(`FAIL - cannot start Chromium at ${args.chromium}: ${e.message.split('\n')[0]}`);
  process.exit(1);
}
const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
const page = await context.newPage();
page.on('request', (r) => requests.push({ url: r.url(), at: Date.now() - started }));
page.on('console', (m) => {
  if (m.type() === 'error') consoleErrors.push(`${m.text()}${m.location()?.url ? ` [${m.location().url}]` : ''}`);
});
page.on('pageerror', (e) => consoleErrors.push(`uncaught: ${e.message}`));
// Bytes received, per chunk (an event stream's too, which never finishes):
// Chromium's own account, decoded (`bytes`) and as sent (`encoded`).
const received = [];
const cdp = await context.newCDPSession(page);
{
  const urls = new Map();
  cdp.on('Network.requestWillBeSent', (e) => urls.set(e.requestId, e.request.url));
  cdp.on('Network.dataReceived', (e) => received.push({
    at: Date.now() - started, url: urls.get(e.requestId) || '?', bytes: e.dataLength, encoded: e.encodedDataLength,
  }));
  await cdp.send('Network.enable');
}
// Long tasks (the main thread busy for more than 50 ms): what a visitor feels as a page that does not answer.
await page.addInitScript(() => {
  window.__longTasks = [];
  try {
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) window.__longTasks.push({ at: Math.round(e.startTime), ms: Math.round(e.duration) });
    }).observe({ type: 'longtask', buffered: true });
  } catch { /* not supported: no figures */ }
});

const eventRequests = () => requests.filter((r) => /\/api\/events(\?|$)/.test(r.url));
const clusterRequests = () => requests.filter((r) => /\/api\/clusters(\?|$)/.test(r.url));
/** The box of an events request, [W,S,E,N], or null without one. */
function boxOfUrl(u) {
  const b = new URL(u).searchParams.get('bbox');
  return b ? b.split(',').map(Number) : null;
}
function inBox([w, s, e, nn], lat, lon) {
  if (lat < s || lat > nn) return false;
  if (e - w >= 360 || (w === -180 && e === 180)) return true;
  const width = e >= w ? e - w : e - w + 360;
  return ((((lon - w) % 360) + 360) % 360) <= width;
}
function offHostRequests() {
  return requests.map((r) => r.url).filter((u) => {
    let url;
    try { url = new URL(u); } catch { return true; }
    if (url.protocol === 'data:' || url.protocol === 'blob:') return false;
    return !LOOPBACK.has(url.hostname);
  });
}

const t = (fn, arg) => page.evaluate(fn, arg);
const snapshotsSoFar = () => t(() => window.dssTest.snapshots.length);
/** Waits for the snapshot after `count` snapshots; returns it. */
async function nextSnapshot(count, timeout = 15_000) {
  await page.waitForFunction((c) => window.dssTest.snapshots.length > c, count, { timeout });
  return t(() => window.dssTest.snapshots.at(-1));
}
/** What the map draws now: DOM markers and clusters, and the page's own account. */
const drawn = () => t(() => ({
  markers: document.querySelectorAll('.dss-marker[data-stream-id]').length,
  clusters: document.querySelectorAll('.dss-cluster[data-count]').length,
  inClusters: [...document.querySelectorAll('.dss-cluster[data-count]')].reduce((a, e) => a + Number(e.dataset.count), 0),
  rows: document.querySelectorAll('#list li').length,
  held: window.dssTest.held(),
  view: window.dssTest.view(),
  box: window.dssTest.box(),
}));

/** A point of the map (right of the side panel) with no marker under it, to drag from. */
async function freeSpot(y0 = 400) {
  const p = await t((y0) => {
    const side = document.querySelector('#side').getBoundingClientRect();
    for (let dy = 0; dy < 300; dy += 17) {
      for (let x = Math.max(side.right + 40, 500); x < window.innerWidth - 80; x += 23) {
        for (const y of [y0 + dy, y0 - dy]) {
          const el = document.elementFromPoint(x, y);
          if (el && (el.id === 'map' || el.classList.contains('leaflet-container') || el.closest('.leaflet-pane') && !el.closest('.leaflet-marker-icon, .leaflet-tooltip, .leaflet-popup'))) return { x, y };
        }
      }
    }
    return null;
  }, y0);
  assert(p, 'no free spot on the map to drag from');
  return p;
}
async function drag(dx, dy) {
  const from = await freeSpot();
  await page.mouse.move(from.x, from.y);
  await page.mouse.down();
  await page.mouse.move(from.x + dx, from.y + dy, { steps: 12 });
  await page.mouse.up();
}
/** The element of a cluster (or a lone camera) in the visible map, right of the side panel. */
async function visible(selector) {
  return t((selector) => {
    const side = document.querySelector('#side').getBoundingClientRect();
    const els = [...document.querySelectorAll(selector)].filter((e) => {
      const r = e.getBoundingClientRect();
      return r.left > side.right + 20 && r.right < window.innerWidth - 60 && r.top > 80 && r.bottom < window.innerHeight - 40;
    });
    const e = els[Math.floor(els.length / 2)];
    if (!e) return null;
    const r = e.getBoundingClientRect();
    return { x: r.left + r.width / 2, y: r.top + r.height / 2, id: e.dataset.streamId || null, count: Number(e.dataset.count || 0) };
  }, selector);
}

/** Checks the view's snapshot and what the page holds after it. */
async function checkView(what, snap, url) {
  const box = boxOfUrl(url);
  assert(box, `${what}: subscribed without a bbox: ${url}`);
  assert(snap.bbox === new URL(url).searchParams.get('bbox'), `${what}: the snapshot is of ${snap.bbox}, the request of ${url}`);
  assert(snap.streams >= VIEW_MIN && snap.streams <= VIEW_MAX,
    `${what}: the snapshot has ${snap.streams} streams, want ${VIEW_MIN}..${VIEW_MAX} of ${args.total}`);
  const d = await drawn();
  assert(inBox(box, d.view.lat, d.view.lon), `${what}: the map's centre ${d.view.lat},${d.view.lon} is not in the box ${box}`);
  assert(d.held.streams <= snap.streams + 5, `${what}: the page holds ${d.held.streams} streams, the snapshot had ${snap.streams}`);
  assert(d.held.outside === 0, `${what}: the page holds ${d.held.outside} streams outside its box`);
  assert(d.markers + d.clusters > 0, `${what}: nothing drawn`);
  assert(d.markers + d.clusters <= 1000, `${what}: ${d.markers} markers and ${d.clusters} clusters in the DOM`);
  return d;
}

let firstUrl;
try {
  // 1. First paint.
  await check(`first paint of ${args.total.toLocaleString('en')} streams within ${FIRST_PAINT_MS} ms of navigation`, async () => {
    const t0 = Date.now();
    await page.goto(args.page, { waitUntil: 'commit', timeout: 30_000 });
    const fp = await (await page.waitForFunction(() => window.dssTest?.firstPaint, null, { timeout: 30_000, polling: 20 })).jsonValue();
    const wall = Date.now() - t0;
    const snap = await t(() => window.dssTest.snapshots[0]);
    const ev = eventRequests();
    assert(ev.length === 1, `${ev.length} requests to /api/events: ${ev.map((r) => r.url).join(' ')}`);
    firstUrl = ev[0].url;
    const d = await checkView('the first view', snap, firstUrl);
    const nav = await t(() => {
      const e = performance.getEntriesByType('navigation')[0];
      return { dcl: Math.round(e.domContentLoadedEventEnd), load: Math.round(e.loadEventEnd) };
    });
    const dec = await t(() => window.dssTest.decisions[0]);
    assert(fp.mode === 'detailed' && dec?.mode === 'detailed', `the first view is drawn in ${fp.mode} mode (counted ${dec?.total})`);
    figure(`first paint: ${fp.ms} ms after navigation (in the page; ${wall} ms by the test's clock; DOMContentLoaded ${nav.dcl} ms), `
      + `${fp.markers} cameras alone and ${fp.clusters} clusters; counted (${dec.total} streams, ${dec.fetch_ms} ms) at ${dec.at} ms, `
      + `subscribed ${snap.ms} ms before the paint`);
    figure(`first view: ${snap.streams} streams of ${args.total} in the box ${snap.bbox}, ${kb(snap.chars)} of snapshot; `
      + `${d.markers} markers + ${d.clusters} clusters (${d.inClusters} cameras) drawn, ${d.rows} rows listed`);
    assert(fp.ms <= FIRST_PAINT_MS, `first paint after ${fp.ms} ms`);
    return `${fp.ms} ms, ${snap.streams} streams`;
  });
  await page.screenshot({ path: join(args.out, 'first.png') });

  // 2. A small drag stays in the box: redrawn, nothing fetched.
  await check('a drag within the box redraws the view and fetches nothing', async () => {
    const before = eventRequests().length;
    const subs = await t(() => window.dssTest.subscriptions());
    const v0 = (await drawn()).view;
    const r0 = requests.length;
    await drag(-200, 60);
    await page.waitForTimeout(1200); // past the 250 ms debounce
    const d = await drawn();
    assert(Math.abs(d.view.lon - v0.lon) > 1e-4, 'the map did not move');
    assert(eventRequests().length === before && (await t(() => window.dssTest.subscriptions())) === subs,
      `subscribed again: ${eventRequests().slice(before).map((r) => r.url).join(' ')}`);
    // (A tooltip's figures, /api/streams/ID/stats, may come from markers the drag passed over.)
    const api = requests.slice(r0).filter((r) => /\/api\/(events|streams)(\?|$)/.test(r.url));
    assert(api.length === 0, `requests: ${api.map((r) => r.url).join(' ')}`);
    assert(d.markers + d.clusters > 0, 'nothing drawn after the drag');
    return `${d.markers} markers + ${d.clusters} clusters`;
  });

  // 3. Drags out of the box: one new subscription, of the new view only.
  await check('dragging out of the box fetches the new view only', async () => {
    const before = eventRequests().length;
    const count = await snapshotsSoFar();
    const t0 = Date.now();
    await drag(-700, 0);
    await drag(-700, 0);
    const snap = await nextSnapshot(count);
    const took = Date.now() - t0;
    await page.waitForTimeout(800); // nothing more comes
    const ev = eventRequests().slice(before);
    assert(ev.length === 1, `${ev.length} new requests to /api/events: ${ev.map((r) => r.url).join(' ')}`);
    const d = await checkView('after the drags', snap, ev[0].url);
    figure(`dragged out of the box: ${snap.streams} streams in ${snap.bbox}, ${kb(snap.chars)}, `
      + `drawn ${snap.ms} ms after subscribing (${took} ms after the drags began); ${d.markers} markers + ${d.clusters} clusters`);
    return `${snap.streams} streams`;
  });
  await page.screenshot({ path: join(args.out, 'dragged.png') });

  // 4. A jump to a distant place.
  const [W, S, E, N] = args.area;
  const far = { lat: S + (N - S) * 0.2, lon: W + (E - W) * 0.8 };
  await check(`a jump to ${far.lat.toFixed(2)},${far.lon.toFixed(2)} fetches that view only`, async () => {
    const before = eventRequests().length;
    const count = await snapshotsSoFar();
    const t0 = Date.now();
    await t(({ lat, lon }) => window.dssTest.setView(lat, lon), far);
    const snap = await nextSnapshot(count);
    const took = Date.now() - t0;
    await page.waitForTimeout(800);
    const ev = eventRequests().slice(before);
    assert(ev.length === 1, `${ev.length} new requests to /api/events: ${ev.map((r) => r.url).join(' ')}`);
    const box = boxOfUrl(ev[0].url);
    assert(inBox(box, far.lat, far.lon), `the box ${box} misses ${far.lat},${far.lon}`);
    const d = await checkView('after the jump', snap, ev[0].url);
    figure(`jumped away: ${snap.streams} streams in ${snap.bbox}, ${kb(snap.chars)}, `
      + `drawn ${took} ms after the jump; ${d.markers} markers + ${d.clusters} clusters, ${d.rows} rows`);
    return `${snap.streams} streams, ${took} ms`;
  });
  await page.screenshot({ path: join(args.out, 'jumped.png') });

  // 5. Interactive: a click on a cluster zooms in, a camera's tooltip shows.
  await check(`a click on a cluster zooms in within ${ANSWER_MS} ms`, async () => {
    const c = await visible('.dss-cluster[data-count]');
    assert(c, 'no cluster in view');
    const z0 = (await drawn()).view.zoom;
    const t0 = Date.now();
    await page.mouse.click(c.x, c.y);
    await page.waitForFunction((z0) => window.dssTest.view().zoom > z0, z0, { timeout: 5000, polling: 10 });
    const ms = Date.now() - t0;
    const z1 = (await drawn()).view.zoom;
    await page.waitForTimeout(1000); // the zoom settles (and may subscribe again)
    figure(`a cluster of ${c.count} clicked: zoom ${z0} → ${z1} after ${ms} ms`);
    assert(ms <= ANSWER_MS, `the map zoomed after ${ms} ms`);
    return `${c.count} cameras, zoom ${z0} → ${z1}, ${ms} ms`;
  });
  await check(`hovering a camera shows its tooltip within ${ANSWER_MS} ms`, async () => {
    const m = await visible('.dss-marker[data-stream-id]');
    assert(m, 'no camera drawn alone in view');
    const t0 = Date.now();
    await page.mouse.move(m.x, m.y);
    const name = await (await page.waitForSelector('.leaflet-tooltip.dss-tip .tip-name', { timeout: 5000 })).textContent();
    const ms = Date.now() - t0;
    await page.mouse.move(5, 790);
    figure(`${m.id} hovered: tooltip "${name}" after ${ms} ms`);
    assert(ms <= ANSWER_MS, `the tooltip showed after ${ms} ms`);
    return `"${name}", ${ms} ms`;
  });

  // 6. The whole area at once (zoomed out): too many streams to list. The
  // page must not subscribe to it (a 16 MB snapshot, 1.5 s of a page that
  // does not answer): it draws the host's clusters, from a few kilobytes.
  const centre = { lat: (S + N) / 2, lon: (W + E) / 2 };
  await check(`zoomed out over the whole area: the host's clusters within ${OVERVIEW_MS} ms, under ${kb(OVERVIEW_BYTES)}, no task over ${OVERVIEW_TASK_MS} ms`, async () => {
    const evBefore = eventRequests().length;
    const snapsBefore = await snapshotsSoFar();
    const ovBefore = await t(() => window.dssTest.overviews.length);
    const rx0 = received.length;
    const at = await t(({ lat, lon }) => { const at = performance.now(); window.dssTest.setView(lat, lon, 6); return at; }, centre);
    await page.waitForFunction((c) => window.dssTest.overviews.length > c && window.dssTest.overviews.at(-1).painted,
      ovBefore, { timeout: 10_000, polling: 20 });
    const ov = await t(() => window.dssTest.overviews.at(-1));
    await page.waitForTimeout(1500); // whatever else this view would bring (a subscription, a snapshot)
    const rx = received.slice(rx0);
    const bytes = rx.reduce((a, r) => a + r.bytes, 0);
    const encoded = rx.reduce((a, r) => a + r.encoded, 0);
    const long = (await t(() => window.__longTasks || [])).filter((e) => e.at >= at);
    const worst = long.reduce((a, e) => Math.max(a, e.ms), 0);
    const d = await drawn();
    const mode = await t(() => window.dssTest.mode());
    const areas = await t(() => window.dssTest.areas());
    const took = Math.round(ov.painted - at);
    figure(`whole area (zoom 6): overview of ${ov.total} streams in ${ov.bbox} on a ${ov.grid}x${ov.grid} grid, ${ov.clusters} clusters `
      + `(${kb(ov.chars)}, answered in ${ov.fetch_ms} ms), painted ${took} ms after zooming out; ${kb(bytes)} received in all `
      + `(${kb(encoded)} on the wire) in ${rx.length} chunks; ${d.clusters} clusters drawn (${d.inClusters} streams), ${d.markers} markers; `
      + `long tasks: ${long.length}, the longest ${worst} ms`);
    await page.screenshot({ path: join(args.out, 'whole-area.png') });
    assert(mode === 'overview', `the page is in ${mode} mode`);
    assert(ov.total > VIEW_MAX, `the box counts ${ov.total} streams: not the whole area`);
    const ev = eventRequests().slice(evBefore);
    assert(ev.length === 0, `subscribed to ${ev.map((r) => r.url).join(' ')}`);
    assert((await snapshotsSoFar()) === snapsBefore, 'a snapshot came');
    assert(bytes <= OVERVIEW_BYTES, `${kb(bytes)} received: ${[...new Set(rx.map((r) => r.url))].join(' ')}`);
    assert(took <= OVERVIEW_MS, `painted ${took} ms after zooming out`);
    assert(worst <= OVERVIEW_TASK_MS, `a task of ${worst} ms`);
    assert(d.clusters > 0 && areas.length === d.clusters, `${d.clusters} clusters in the DOM, the page draws ${areas.length}`);
    assert(d.clusters <= 1000 && d.markers <= 10, `${d.markers} markers and ${d.clusters} clusters in the DOM`);
    assert(d.inClusters <= ov.total, `the clusters drawn count ${d.inClusters}, the box ${ov.total}`);
    assert(d.held.streams <= 5, `the page holds ${d.held.streams} streams`);
    const shown = await page.textContent('#shown');
    assert(/zoom in to list them/.test(shown), `the list says "${shown}"`);
    return `${ov.clusters} clusters of ${ov.total} streams, ${kb(bytes)}, ${took} ms, longest task ${worst} ms`;
  });

  await check('the overview is counted again with its ETag (304: nothing redrawn)', async () => {
    const r0 = requests.length;
    const areasBefore = await t(() => window.dssTest.areas().join());
    let status = await t(() => window.dssTest.refreshOverview());
    // Something may have changed once (a lazy listing): the next one is a 304.
    if (status === 200) status = await t(() => window.dssTest.refreshOverview());
    assert(status === 304, `refreshed: ${status}`);
    const asked = requests.slice(r0).filter((r) => /\/api\/clusters\?/.test(r.url));
    assert(asked.length >= 1, 'no request to /api/clusters');
    assert((await t(() => window.dssTest.areas().join())) === areasBefore, 'the clusters changed on a 304');
    assert((await t(() => window.dssTest.mode())) === 'overview', 'left the overview');
    return `${asked.length} request(s), ${status}`;
  });

  await check(`a click on one of the host's clusters zooms to it within ${ANSWER_MS} ms`, async () => {
    const c = await visible('.dss-cluster.dss-area[data-count]');
    assert(c, 'no cluster of the host in view');
    const z0 = (await drawn()).view.zoom;
    const decisions = await t(() => window.dssTest.decisions.length);
    const t0 = Date.now();
    await page.mouse.click(c.x, c.y);
    await page.waitForFunction((z0) => window.dssTest.view().zoom > z0, z0, { timeout: 5000, polling: 10 });
    const ms = Date.now() - t0;
    // Settled: counted (or known small), then drawn in its mode.
    await page.waitForFunction((n) => {
      const t = window.dssTest;
      if (t.decisions.length <= n) return false;
      const d = t.decisions.at(-1);
      return d.mode === 'overview' ? t.overviews.at(-1)?.painted && t.overviews.at(-1).bbox === d.bbox : t.snapshots.at(-1)?.bbox === d.bbox;
    }, decisions, { timeout: 15_000, polling: 50 });
    const d = await drawn();
    const dec = await t(() => window.dssTest.decisions.at(-1));
    figure(`a host's cluster of ${c.count} clicked: zoom ${z0} → ${d.view.zoom} after ${ms} ms; then ${dec.mode} `
      + `(${dec.total ?? 'known small'} streams in ${dec.bbox}), ${d.markers} markers + ${d.clusters} clusters`);
    assert(ms <= ANSWER_MS, `the map zoomed after ${ms} ms`);
    return `${c.count} streams, zoom ${z0} → ${d.view.zoom}, ${ms} ms, ${dec.mode}`;
  });

  await check('zooming in again lists a small box (detailed mode)', async () => {
    const again = await snapshotsSoFar();
    const t0 = Date.now();
    await t(({ lat, lon }) => window.dssTest.setView(lat, lon, 10), far);
    const back = await nextSnapshot(again);
    const took = Date.now() - t0;
    await page.waitForTimeout(500);
    const d = await checkView('zoomed in again', back, eventRequests().at(-1).url);
    assert((await t(() => window.dssTest.mode())) === 'detailed', 'not in detailed mode');
    assert((await t(() => window.dssTest.areas().length)) === 0, 'the host\'s clusters are still drawn');
    figure(`zoomed in again: ${back.streams} streams in ${back.bbox}, ${kb(back.chars)}, drawn ${took} ms after the zoom; `
      + `${d.markers} markers + ${d.clusters} clusters, ${d.rows} rows`);
    return `${back.streams} streams, ${took} ms`;
  });

  // Checked last: everything the page did.
  await check('every subscription had a box; no listing of every stream; no console errors; nothing from outside', async () => {
    const bare = [...eventRequests(), ...clusterRequests()].filter((r) => !boxOfUrl(r.url));
    assert(bare.length === 0, `/api/events or /api/clusters without a bbox: ${bare.map((r) => r.url).join(' ')}`);
    const big = (await t(() => window.dssTest.snapshots)).filter((x) => x.streams > VIEW_MAX);
    assert(big.length === 0, `snapshots of ${big.map((x) => `${x.streams} streams (${x.bbox})`).join(', ')}`);
    // /api/streams only for one stream, a small provider's streams (those
    // without a position are in no box), or one stream (the nudge of lazy providers).
    const providers = await (await fetch(new URL('api/providers', args.page))).json();
    const small = new Set(providers.filter((p) => (p.stream_count || 0) <= 1000).map((p) => p.id));
    const lists = requests.filter((r) => {
      const u = new URL(r.url);
      if (!/\/api\/streams$/.test(u.pathname)) return false;
      return !(u.searchParams.get('limit') === '1' || u.searchParams.has('bbox') || small.has(u.searchParams.get('provider')));
    });
    assert(lists.length === 0, `listings requested: ${lists.map((r) => r.url).join(' ')}`);
    assert(consoleErrors.length === 0, `console errors: ${consoleErrors.join(' | ')}`);
    const off = offHostRequests();
    assert(off.length === 0, `requests off this host: ${off.join(', ')}`);
    return `${requests.length} requests, ${eventRequests().length} subscriptions, ${clusterRequests().length} counts`;
  });

  const long = await t(() => window.__longTasks || []);
  const worst = long.reduce((a, e) => Math.max(a, e.ms), 0);
  figure(`long tasks (main thread busy > 50 ms): ${long.length}, the longest ${worst} ms, ${long.reduce((a, e) => a + e.ms, 0)} ms in all`);
  const snaps = await t(() => window.dssTest.snapshots);
  figure(`snapshots: ${snaps.map((s) => `${s.streams} streams ${kb(s.chars)} in ${s.ms} ms (handled in ${s.handled_ms})`).join('; ')}`);
  const decs = await t(() => window.dssTest.decisions);
  figure(`views decided: ${decs.map((d) => `${d.mode} (${d.total ?? 'known small'}${d.total != null ? `, ${kb(d.chars)} in ${d.fetch_ms} ms` : ''})`).join('; ')}`);
} catch (e) {
  fail('the run', e?.stack || String(e));
} finally {
  await browser.close().catch(() => {});
}

console.log('# figures:');
for (const f of figures) console.log(`#   ${f}`);
tap.finish();

#!/usr/bin/env node
// The DSS web page in a real browser (Debian's Chromium, driven by
// playwright-core).
//
//   cd tests/browser && npm ci
//   node tests/browser/page.test.mjs --page http://127.0.0.1:8080/ \
//        --api http://127.0.0.1:8000 --out DIR [--phone ID] [--chromium PATH]
//
// --page: the page through nginx's public port; --api: the host's private
// API (test-only actions: admin start/stop of demo-pattern), with the API
// token in DSS_API_TOKEN. --phone: a
// phone streaming now (its stream id, e.g. phones-test, or its phone id);
// the check waits for it to connect. Prints one line per check, exits 1 on
// any failure. Needs the demo providers (demo-bars, demo-pattern).

import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import * as tap from './tap.mjs';

// ------------------------------------------------------------ arguments

const args = tap.args(
  'page.test',
  'node page.test.mjs --page URL --api URL --out DIR [--phone ID] [--chromium PATH] [--play ID] [--change ID]',
  {
    page: { type: 'string' },
    api: { type: 'string' },
    out: { type: 'string' },
    phone: { type: 'string' },
    chromium: { type: 'string', default: process.env.CHROMIUM || '/usr/bin/chromium' },
    play: { type: 'string', default: 'demo-bars' },
    change: { type: 'string', default: 'demo-pattern' },
  },
  ['page', 'api', 'out'],
);
args.api = args.api.replace(/\/+$/, '');
mkdirSync(args.out, { recursive: true });

const { ok, fail, note, check, assert } = tap;
tap.deadline(240);

// ------------------------------------------------------------ the host

async function apiJSON(path, init) {
  const headers = { ...(init?.headers || {}) };
  if (process.env.DSS_API_TOKEN) headers.Authorization = `Bearer ${process.env.DSS_API_TOKEN}`;
  const r = await fetch(`${args.api}${path}`, { ...init, headers });
  const body = await r.text();
  if (!r.ok) throw new Error(`${init?.method || 'GET'} ${path}: HTTP ${r.status} ${body.slice(0, 200)}`);
  return body ? JSON.parse(body) : null;
}
const admin = (id, action) => apiJSON(`/api/streams/${encodeURIComponent(id)}/${action}`, { method: 'POST' });

// ----------------------------------------------------------- the browser

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]', '::1']);
const requests = [];
const consoleErrors = [];
const tolerated = [];
/**
 * HTTP statuses the API documents as normal, which Chromium still logs as
 * "Failed to load resource": a playlist while its stream starts (404/503;
 * the player retries). The page asks for a thumbnail only once the
 * stream's figures say it has one.
 */
const EXPECTED_FAILURES = [
  /\/(hls|dash)\/[^/]+\/index\.(m3u8|mpd)$/,
];

let browser;
try {
  browser = await chromium.launch({
    executablePath: args.chromium,
    headless: true,
    args: ['--no-sandbox', '--autoplay-policy=no-user-gesture-required'],
  });
} catch (e) {
  console.log(`FAIL - cannot start Chromium at ${args.chromium}: ${e.message.split('\n')[0]}`);
  process.exit(1);
}
const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
const page = await context.newPage();
page.on('request', (r) => requests.push(r.url()));
page.on('console', (m) => {
  if (m.type() !== 'error') return;
  const url = m.location()?.url || '';
  const text = m.text();
  if (/^Failed to load resource: the server responded with a status of (404|503)/.test(text)
      && EXPECTED_FAILURES.some((re) => re.test(url))) {
    tolerated.push(`${text} ${url}`);
    return;
  }
  consoleErrors.push(`${text}${url ? ` [${url}]` : ''}`);
});
page.on('pageerror', (e) => consoleErrors.push(`uncaught: ${e.message}`));

function offHostRequests() {
  return requests.filter((u) => {
    let url;
    try { url = new URL(u); } catch { return true; }
    if (url.protocol === 'data:' || url.protocol === 'blob:') return false;
    return !LOOPBACK.has(url.hostname);
  });
}

/** The map marker element of a stream. */
const markerSel = (id) => `.leaflet-marker-icon[data-stream-id="${id}"]`;
const rowSel = (id) => `#list button[data-stream-id="${id}"]`;

let streams = [];
let phoneIds = new Set();
let mobileInstances = [];

try {
  // 1. Loads clean, from this host only.
  await check('page loads with no console errors and no request off 127.0.0.1', async () => {
    await page.goto(args.page, { waitUntil: 'load', timeout: 30_000 });
    await page.waitForFunction(() => window.dssTest?.ready === true, null, { timeout: 15_000 });
    await page.waitForTimeout(1500); // late requests (land layer, lazy listing)
    assert(consoleErrors.length === 0, `console errors: ${consoleErrors.join(' | ')}`);
    const off = offHostRequests();
    assert(off.length === 0, `requests off this host: ${off.join(', ')}`);
    // The page subscribes to its view's box only (tests/browser/scale.test.mjs checks it at 100,000 streams).
    const events = requests.filter((u) => /\/api\/events(\?|$)/.test(u));
    assert(events.length > 0 && events.every((u) => new URL(u).searchParams.has('bbox')),
      `subscriptions: ${events.join(' ') || 'none'}`);
    // A handful of streams: the view is counted (/api/clusters) and listed, never an overview.
    const counts = requests.filter((u) => /\/api\/clusters\?/.test(u));
    const mode = await page.evaluate(() => window.dssTest.mode());
    assert(counts.length > 0 && counts.every((u) => new URL(u).searchParams.has('bbox')) && mode === 'detailed',
      `counted ${counts.join(' ') || 'never'}; ${mode} mode`);
    return `${requests.length} requests, subscribed to ${new URL(events.at(-1)).searchParams.get('bbox')}`;
  });

  // 2. One marker per camera with a position in the page's box (the view and around it).
  await check('camera markers match /api/streams?bbox= of the page\'s box (with geo, not phones)', async () => {
    const providers = await apiJSON('/api/providers');
    const mobile = new Set(providers.filter((p) => p.module === 'mobile-ts').map((p) => p.id));
    mobileInstances = [...mobile];
    streams = await apiJSON('/api/streams');
    phoneIds = new Set(streams.filter((s) => mobile.has(s.provider)).map((s) => s.id));
    // Listings can arrive after the snapshot: give the page a moment.
    let got = [];
    let want = [];
    let box = null;
    const until = Date.now() + 5000;
    do {
      box = await page.evaluate(() => window.dssTest.box());
      const inBox = await apiJSON(`/api/streams?bbox=${box}`);
      want = inBox.filter((s) => s.geo && !phoneIds.has(s.id)).map((s) => s.id).sort();
      got = await page.evaluate(() => window.dssTest.markerIds());
      if (JSON.stringify(got) === JSON.stringify(want)) break;
      await page.waitForTimeout(250);
    } while (Date.now() < until);
    assert(JSON.stringify(got) === JSON.stringify(want),
      `page has [${got.join(', ')}], /api/streams?bbox=${box} has [${want.join(', ')}]`);
    // The demo's cameras are all around the page's view (nothing missing from the box).
    const all = streams.filter((s) => s.geo && !phoneIds.has(s.id)).length;
    assert(want.length === all, `the box ${box} holds ${want.length} of the ${all} cameras`);
    // What the map draws: lone markers in the DOM plus clusters' counts.
    const dom = await page.evaluate(() => ({
      alone: [...document.querySelectorAll('.dss-marker[data-stream-id]')].map((e) => e.dataset.streamId),
      clustered: [...document.querySelectorAll('.dss-cluster[data-count]')].reduce((a, e) => a + Number(e.dataset.count), 0),
      r: window.dssTest.rendered(),
    }));
    const drawn = dom.alone.length + dom.clustered + dom.r.elsewhere;
    assert(drawn === want.length,
      `the map draws ${dom.alone.length} markers + ${dom.clustered} clustered + ${dom.r.elsewhere} off-screen, want ${want.length}`);
    return `${want.length} cameras: ${dom.alone.length} markers, ${dom.clustered} in ${dom.r.clusters.length} clusters`;
  });

  await page.screenshot({ path: join(args.out, 'map.png') });
  note(`screenshot ${join(args.out, 'map.png')}`);

  // 3. Hover shows the tooltip; a click plays.
  const playId = args.play;
  await check(`hovering ${playId} shows its tooltip`, async () => {
    const found = await page.evaluate((id) => window.dssTest.reveal(id), playId);
    assert(found, `no marker for ${playId}`);
    await page.hover(markerSel(playId), { timeout: 5000 });
    const tip = await page.waitForSelector('.leaflet-tooltip.dss-tip .tip-name', { timeout: 3000 });
    const name = await tip.textContent();
    const want = streams.find((s) => s.id === playId)?.name;
    assert(name === want, `tooltip names "${name}", want "${want}"`);
    const stats = await page.waitForFunction(() => {
      const t = document.querySelector('.leaflet-tooltip.dss-tip .tip-stats')?.textContent || '';
      return /uptime \d+%/.test(t) && t;
    }, null, { timeout: 5000 });
    return `"${name}", ${await stats.jsonValue()}`;
  });

  await check(`clicking ${playId} plays video (currentTime > 1 s within 30 s) and lists it live`, async () => {
    const t0 = Date.now();
    await page.click(markerSel(playId), { timeout: 5000 });
    await page.waitForSelector('#player:not([hidden])', { timeout: 3000 });
    const status = await page.textContent('#player-status');
    await page.waitForFunction(() => document.querySelector('#video').currentTime > 1, null, { timeout: 30_000 });
    const playedAfter = (Date.now() - t0) / 1000;
    await page.waitForSelector(`${rowSel(playId)}[data-state="live"]`, { timeout: 5000 });
    const error = await page.$eval('#player-error', (e) => (e.hidden ? '' : e.textContent));
    assert(!error, `the player shows an error: ${error}`);
    const urls = await page.$$eval('#player-urls input', (els) => els.map((e) => e.value));
    assert(urls.some((u) => u.includes(`/hls/${playId}/index.m3u8`)) && urls.every((u) => !u.includes('HOST')),
      `player URLs: ${urls.join(' ')}`);
    return `first status "${status}", past 1 s after ${playedAfter.toFixed(1)} s`;
  });
  await page.screenshot({ path: join(args.out, 'player.png') });
  note(`screenshot ${join(args.out, 'player.png')}`);

  await check('Escape closes the player; Enter on a focused marker opens it', async () => {
    await page.keyboard.press('Escape');
    await page.waitForSelector('#player', { state: 'hidden', timeout: 2000 });
    // Closing ends the lease: hls.js is gone, the playlist is no longer polled.
    const src = await page.$eval('#video', (v) => v.getAttribute('src') || '');
    assert(!src, `the video still has a source after closing: ${src}`);
    const before = requests.length;
    await page.waitForTimeout(4000);
    const polled = requests.slice(before).filter((u) => u.includes(`/hls/${playId}/`));
    assert(polled.length === 0, `the closed player still fetches ${polled.join(', ')}`);
    await page.focus(markerSel(playId));
    await page.keyboard.press('Enter');
    await page.waitForSelector('#player:not([hidden])', { timeout: 2000 });
    const title = await page.textContent('#player-title');
    await page.keyboard.press('Escape');
    await page.waitForSelector('#player', { state: 'hidden', timeout: 2000 });
    const focused = await page.evaluate(() => document.activeElement?.dataset?.streamId || '');
    assert(focused === playId, `focus went to "${focused}" after Escape, not back to the marker`);
    return `opened "${title}"`;
  });

  // 4. A state change reaches the marker within 1 s of its event.
  const changeId = args.change;
  await check(`a stream event for ${changeId} recolours its marker within 1 s`, async () => {
    await admin(changeId, 'stop');
    await page.evaluate((id) => window.dssTest.reveal(id), changeId);
    await page.waitForFunction((sel) => ['idle', 'offline'].includes(document.querySelector(sel)?.dataset.state),
      markerSel(changeId), { timeout: 20_000 });
    const before = await page.$eval(markerSel(changeId), (e) => e.dataset.state);
    // Our own EventSource in the page, and an observer on the marker.
    await page.evaluate(({ id, sel, before }) => new Promise((resolve, reject) => {
      const t = { event: null, eventState: null, dom: null, domState: null };
      window.__stateTiming = t;
      const el = document.querySelector(sel);
      new MutationObserver(() => {
        if (t.dom === null && el.dataset.state !== before) { t.dom = performance.now(); t.domState = el.dataset.state; }
      }).observe(el, { attributes: true, attributeFilter: ['data-state'] });
      const es = new EventSource('api/events');
      window.__testEvents = es;
      es.addEventListener('stream', (e) => {
        const d = JSON.parse(e.data);
        if (d.id === id && t.event === null && d.state !== before) { t.event = performance.now(); t.eventState = d.state; }
      });
      es.addEventListener('snapshot', () => resolve());
      setTimeout(() => reject(new Error('no snapshot on the test EventSource')), 10_000);
    }), { id: changeId, sel: markerSel(changeId), before });
    await admin(changeId, 'start');
    const t = await (await page.waitForFunction(() => {
      const t = window.__stateTiming;
      return t.event !== null && t.dom !== null && t;
    }, null, { timeout: 15_000 })).jsonValue();
    await page.evaluate(() => window.__testEvents.close());
    const lag = t.dom - t.event;
    assert(lag < 1000, `the marker changed ${lag.toFixed(0)} ms after the event`);
    return `${before} → ${t.eventState} (marker ${t.domState}) ${lag.toFixed(0)} ms after the event`;
  });
  await admin(changeId, 'stop').catch((e) => note(`cleanup: ${e.message}`));

  // 5. A phone moves.
  if (args.phone) {
    await check(`phone ${args.phone} has a marker that follows its positions`, async () => {
      // A stream id (phones-ID) or the phone's id (ID, as `dss mobile-send` prints it).
      const ids = [args.phone, ...mobileInstances.map((inst) => `${inst}-${args.phone}`)];
      // The page holds the streams around its view: look where the phone is (the checks above zoomed in elsewhere).
      for (const sid of ids) {
        const s = await apiJSON(`/api/streams/${encodeURIComponent(sid)}`).catch(() => null);
        if (s?.geo) { await page.evaluate(({ lat, lon }) => window.dssTest.setView(lat, lon, 13), s.geo); break; }
      }
      let id;
      try {
        id = await (await page.waitForFunction((ids) => ids.find((id) => window.dssTest.phoneLatLng(id)),
          ids, { timeout: 30_000 })).jsonValue();
      } catch {
        const shown = await page.evaluate(() => window.dssTest.phoneIds());
        throw new Error(`no marker for ${ids.join(' or ')} within 30 s (phones on the map: ${shown.join(', ') || 'none'})`);
      }
      const el = await page.$(markerSel(id));
      assert(el, `no marker element for ${id}`);
      const first = await page.evaluate((id) => window.dssTest.phoneLatLng(id), id);
      const pos = await page.evaluate(({ id, first }) => new Promise((resolve, reject) => {
        const es = new EventSource('api/events');
        es.addEventListener('position', (e) => {
          const d = JSON.parse(e.data);
          if (d.id !== id || (d.lat === first.lat && d.lon === first.lon)) return;
          const at = performance.now();
          es.close();
          // The marker follows within a second.
          const until = at + 1000;
          (function poll() {
            const ll = window.dssTest.phoneLatLng(id);
            if (ll && Math.abs(ll.lat - d.lat) < 1e-9 && Math.abs(ll.lon - d.lon) < 1e-9) resolve({ d, ll, ms: performance.now() - at });
            else if (performance.now() > until) reject(new Error(`the marker is at ${JSON.stringify(ll)}, the event said ${d.lat},${d.lon}`));
            else setTimeout(poll, 20);
          })();
        });
        setTimeout(() => { es.close(); reject(new Error('no new position event within 20 s')); }, 20_000);
      }), { id, first });
      const track = await page.evaluate((id) => document.querySelectorAll('.leaflet-tracks-pane path').length, id);
      assert(track > 0, 'no track line drawn');
      return `${id}: ${first.lat.toFixed(5)},${first.lon.toFixed(5)} → ${pos.ll.lat.toFixed(5)},${pos.ll.lon.toFixed(5)} (${pos.ms.toFixed(0)} ms after its event)`;
    });
    await page.screenshot({ path: join(args.out, 'phone.png') });
  }

  // Phone width: the side panel collapses to its header.
  await check('phone width: the side panel collapses, the map stays usable', async () => {
    const small = await context.newPage();
    small.on('pageerror', (e) => consoleErrors.push(`uncaught (phone width): ${e.message}`));
    small.on('request', (r) => requests.push(r.url()));
    await small.setViewportSize({ width: 390, height: 800 });
    await small.goto(args.page, { waitUntil: 'load' });
    await small.waitForFunction(() => window.dssTest?.ready === true, null, { timeout: 15_000 });
    const collapsed = await small.$eval('#side', (e) => e.classList.contains('collapsed') && e.getBoundingClientRect().height < 140);
    assert(collapsed, 'the side panel is not collapsed at 390 px');
    await small.click('#side-toggle');
    const rowsShown = await small.$$eval('#list button.row', (els) => els.filter((e) => e.offsetParent).length);
    assert(rowsShown > 0, 'no list rows after opening the panel');
    await small.screenshot({ path: join(args.out, 'phone-width.png') });
    await small.close();
    return `${rowsShown} rows after opening`;
  });

  // Checked last: everything the page did.
  await check('no console errors and no request off 127.0.0.1 during the run', async () => {
    assert(consoleErrors.length === 0, `console errors: ${consoleErrors.join(' | ')}`);
    const off = offHostRequests();
    assert(off.length === 0, `requests off this host: ${off.join(', ')}`);
    return `${requests.length} requests, ${tolerated.length} expected 404/503s`;
  });
  for (const t of [...new Set(tolerated)]) note(`expected: ${t}`);
} catch (e) {
  fail('the run', e?.stack || String(e));
} finally {
  await browser.close().catch(() => {});
}

tap.finish();

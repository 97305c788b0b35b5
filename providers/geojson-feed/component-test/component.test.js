// The built component (geojson-feed.wasm), run in Node through jco with a MockHost as its host:
// checks the build and the canonical ABI (records, the secret variant, errors). `npm run
// test:component` builds first. The DSS host's own check is `dss providers check`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { loadComponent, MockHost } from 'dss-provider-sdk/testing';

const WASM = new URL('../geojson-feed.wasm', import.meta.url).pathname;
const DEMO = readFileSync(new URL('../../../www/demo/cameras.geojson', import.meta.url), 'utf8');
const URL_ = 'https://gis.example/cameras.geojson';

test('describe', async () => {
  const c = await loadComponent(WASM, new MockHost());
  const info = await c.describe();
  assert.equal(info.name, 'geojson-feed');
  assert.equal(info.version, JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')).version);
});

test('lists the demo document, sending the secret header by name', async () => {
  const host = new MockHost().withSecrets({ CAMS_KEY: 'x' }).respond(URL_, 200, DEMO, 'application/geo+json');
  const c = await loadComponent(WASM, host);
  const streams = await c.listStreams(JSON.stringify({ url: URL_, secret_headers: { 'x-api-key': 'CAMS_KEY' } }));
  assert.deepEqual(streams.map((s) => [s.key, s.online]), [
    ['maracana', true], ['ipanema-posto-9', true], ['praca-maua', true], ['enseada-botafogo', false],
  ]);
  assert.deepEqual(streams[0].geo, { lat: -22.9121, lon: -43.2302 });
  assert.deepEqual(host.requests[0].header('x-api-key'), { name: 'x-api-key', secret: 'CAMS_KEY' });
  assert.equal(host.requests[0].call, 'http-request');
  assert.match(host.logged('debug')[0], /^4 cameras \(0 features skipped\)/);
});

test('errors cross the boundary as WIT error records', async () => {
  const host = new MockHost().respond(URL_, 502, 'bad gateway').respond('https://gis.example/html', 200, '<html>');
  const c = await loadComponent(WASM, host);
  await assert.rejects(c.listStreams(JSON.stringify({ url: URL_ })), { code: 'upstream', message: `GET ${URL_}: HTTP status 502` });
  await assert.rejects(c.listStreams(JSON.stringify({ url: 'https://gis.example/html' })), { code: 'parse' });
  await assert.rejects(c.init('{"url":"ftp://x"}'), { code: 'invalid-config' });
});

// Native tests (node --test): the provider's logic against sample GeoJSON, with the host answered
// by MockHost. `exportProvider(feed, host)` is exactly what the component exports.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { exportProvider, parseConfig, ProviderError } from 'dss-provider-sdk';
import { MockHost } from 'dss-provider-sdk/testing';
import feed, { isOnline, pointGeo, request, VERSION } from '../src/geojson-feed.js';

const SAMPLE = readFileSync(new URL('./sample.geojson', import.meta.url), 'utf8');
const DEMO = readFileSync(new URL('../../../www/demo/cameras.geojson', import.meta.url), 'utf8');
const URL_ = 'https://gis.example/cameras.geojson';
const CONFIG = JSON.stringify({ url: URL_, source_template: 'rtsp://cams.example/{key}', tag_properties: ['district'] });

/** The component's exported interface, run against `host` (patch=false: leave Node's globals alone). */
const component = (host) => exportProvider(feed, host, { patch: false });

const point = (lon, lat) => ({ type: 'Point', coordinates: [lon, lat] });
const collection = (...features) => ({ type: 'FeatureCollection', features });

test('defaults: key, name, source and status properties; GET with an Accept header', async () => {
  const host = new MockHost().respond(URL_, 200, collection(
    { type: 'Feature', geometry: point(-43.17, -22.90), properties: { id: 'centro', name: 'Centro', source: 'rtsp://cams.example/centro', status: 'online' } },
    { type: 'Feature', geometry: point(-43.20, -22.94), properties: { id: 7, source: 'rtsp://cams.example/7' } },
    { type: 'Feature', id: 'lagoa', geometry: point(-43.21, -22.97), properties: { source: 'rtsp://cams.example/lagoa', status: 'offline' } },
  ), 'application/geo+json');
  const streams = await component(host).listStreams(JSON.stringify({ url: URL_ }));
  assert.deepEqual(streams, [
    { key: 'centro', source: 'rtsp://cams.example/centro', name: 'Centro', geo: { lat: -22.90, lon: -43.17 }, online: true, inputOptions: [], tags: [{ key: 'status', value: 'online' }] },
    { key: '7', source: 'rtsp://cams.example/7', name: '7', geo: { lat: -22.94, lon: -43.20 }, online: true, inputOptions: [], tags: [] },
    { key: 'lagoa', source: 'rtsp://cams.example/lagoa', name: 'lagoa', geo: { lat: -22.97, lon: -43.21 }, online: false, inputOptions: [], tags: [{ key: 'status', value: 'offline' }] },
  ]);
  assert.equal(host.requests.length, 1);
  const [req] = host.requests;
  assert.equal(req.call, 'http-request', 'httpRequest, so that secret headers work');
  assert.equal(req.method, 'GET');
  assert.equal(req.url, URL_);
  assert.deepEqual(req.headers, [{ name: 'accept', text: 'application/geo+json, application/json;q=0.9' }]);
  assert.deepEqual(host.logged('warn'), []);
});

test('the sample: valid Point features are listed, the others skipped with a warning', async () => {
  const host = new MockHost().respond(URL_, 200, SAMPLE, 'application/geo+json');
  const streams = await component(host).listStreams(CONFIG);
  assert.deepEqual(streams.map((s) => s.key), ['1', '27', 'copa-3']);

  const [cam1, cam27, copa] = streams;
  assert.equal(cam1.name, 'Av. Pres. Vargas X R. 1º Março');
  assert.equal(cam1.source, 'rtsp://cams.example/cam1', 'a source property wins over the template');
  assert.deepEqual(cam1.geo, { lat: -22.90026953385686, lon: -43.17699603271244 }, 'GeoJSON is [lon, lat]');
  assert.deepEqual(cam1.tags, [{ key: 'status', value: 'online' }, { key: 'district', value: 'Centro' }]);

  assert.equal(cam27.key, '27', 'numeric ids become text');
  assert.equal(cam27.source, 'rtsp://cams.example/27', 'source_template');
  assert.equal(cam27.online, false, '"Offline" (any case) is offline');

  assert.equal(copa.key, 'copa-3', "the feature's id when there is no key property");
  assert.deepEqual(copa.geo, { lat: -22.9711, lon: -43.1822 }, 'altitude is ignored');
  assert.equal(copa.online, true, 'status true');

  const warnings = host.logged('warn');
  assert.equal(warnings.length, 7, warnings.join('\n'));
  for (const expected of [
    'skipping feature 3 (key "no-geo"): no geometry (a Point is needed)',
    'skipping feature 4 (key "bad key!"): invalid key',
    'skipping feature 5 (key "1"): duplicate key',
    'skipping feature 6 (key "road"): geometry is LineString, not a Point',
    'skipping feature 7 (key "swapped"): Point coordinates [-22.9, -143.2] are out of range',
    'skipping feature 8: no "id" property and no feature id',
    'skipping feature 9: not a GeoJSON Feature',
  ]) {
    assert.ok(warnings.some((w) => w.startsWith(expected)), `missing warning: ${expected}\n${warnings.join('\n')}`);
  }
  assert.match(host.logged('debug')[0], /^3 cameras \(7 features skipped\) from https:\/\/gis\.example\/cameras\.geojson in \d+ ms$/);
});

test('a feature without a source is skipped when there is no source_template', async () => {
  const host = new MockHost().respond(URL_, 200, SAMPLE);
  const streams = await component(host).listStreams(JSON.stringify({ url: URL_ }));
  assert.deepEqual(streams.map((s) => s.key), ['1'], 'only the camera with a source property');
  assert.ok(host.logged('warn').some((w) => w.startsWith('skipping feature 1 (key "27"): no "source" property and the config has no source_template')));
});

test('property names are configurable, and online_values says which statuses are online', async () => {
  const doc = collection(
    { type: 'Feature', geometry: point(2.35, 48.85), properties: { code: 'paris-1', title: 'Paris', url: 'http://video.example/p1.m3u8', state: 'DOWN' } },
    { type: 'Feature', geometry: point(2.29, 48.86), properties: { code: 'paris-2', title: 'Trocadéro', url: 'http://video.example/p2.m3u8', state: ' Up ' } },
    { type: 'Feature', geometry: point(2.33, 48.87), properties: { code: 'paris-3', url: 'http://video.example/p3.m3u8' } },
    { type: 'Feature', geometry: point(2.31, 48.84), properties: { code: 'paris-4', url: 'http://video.example/p4.m3u8', state: 'maintenance', id: 'ignored' } },
  );
  const host = new MockHost().respond(URL_, 200, doc);
  const config = JSON.stringify({
    url: URL_,
    properties: { key: 'code', name: 'title', source: 'url', status: 'state' },
    online_values: ['up', 'OK'],
  });
  const streams = await component(host).listStreams(config);
  assert.deepEqual(streams.map((s) => [s.key, s.name, s.source, s.online]), [
    ['paris-1', 'Paris', 'http://video.example/p1.m3u8', false],
    ['paris-2', 'Trocadéro', 'http://video.example/p2.m3u8', true],
    ['paris-3', 'paris-3', 'http://video.example/p3.m3u8', true],
    ['paris-4', 'paris-4', 'http://video.example/p4.m3u8', false],
  ]);
  assert.deepEqual(streams[0].tags, [{ key: 'status', value: 'DOWN' }]);
});

test('secret headers are sent by name, text headers as text', async () => {
  const host = new MockHost()
    .withSecrets({ CAMS_KEY: 'the-value-the-module-never-sees' })
    .respond(URL_, 200, collection());
  const config = JSON.stringify({
    url: URL_,
    headers: { Accept: 'application/json', 'X-Client': 'dss' },
    secret_headers: { 'X-Api-Key': 'CAMS_KEY' },
  });
  assert.deepEqual(await component(host).listStreams(config), []);
  const [req] = host.requests;
  assert.deepEqual(req.headers, [
    { name: 'Accept', text: 'application/json' },
    { name: 'X-Client', text: 'dss' },
    { name: 'X-Api-Key', secret: 'CAMS_KEY' },
  ]);
  assert.deepEqual(req.header('x-api-key'), { name: 'X-Api-Key', secret: 'CAMS_KEY' });
  assert.ok(!JSON.stringify(host.logs).includes('the-value'), 'the value is nowhere');

  // A secret the instance does not have: the host fails the request.
  const bad = new MockHost().withSecrets({}).respond(URL_, 200, collection());
  await assert.rejects(component(bad).listStreams(config), {
    code: 'upstream',
    message: `GET ${URL_}: header x-api-key: secret "CAMS_KEY" is not in this instance's [secrets] (it has none)`,
  });
});

test('documents that are not a FeatureCollection are parse errors', async () => {
  for (const [body, message] of [
    ['{"type":"Feature","properties":{}}', `${URL_}: not a GeoJSON FeatureCollection (type "Feature")`],
    ['[1,2]', `${URL_}: not a GeoJSON FeatureCollection (an array)`],
    ['null', `${URL_}: not a GeoJSON FeatureCollection (null)`],
    ['{"type":"FeatureCollection"}', `${URL_}: a FeatureCollection without a "features" array`],
    ['<html>', `GET ${URL_}: body is not JSON: `],
  ]) {
    const host = new MockHost().respond(URL_, 200, body);
    await assert.rejects(component(host).listStreams(CONFIG), (e) => {
      assert.equal(e.code, 'parse');
      assert.ok(e.message.startsWith(message), e.message);
      return true;
    });
  }
});

test('non-2xx answers and refusals are upstream errors naming the cause', async () => {
  let host = new MockHost().respond(URL_, 503, 'down', { headers: { 'retry-after': '60' } });
  await assert.rejects(component(host).listStreams(CONFIG), { code: 'upstream', message: `GET ${URL_}: HTTP status 503` });
  host = new MockHost().respond(URL_, 404, collection());
  await assert.rejects(component(host).listStreams(CONFIG), { code: 'upstream', message: `GET ${URL_}: HTTP status 404` });
  host = new MockHost().fail(URL_, 'host gis.example is not in allow_hosts');
  await assert.rejects(component(host).listStreams(CONFIG), {
    code: 'upstream',
    message: `GET ${URL_}: host gis.example is not in allow_hosts`,
  });
});

test('init checks the configuration and applies its options', async () => {
  const c = component(new MockHost());
  const info = await c.init(JSON.stringify({
    url: URL_, refresh_seconds: 60, input_options: ['-rtsp_transport', 'tcp'], output_options: ['-c:v', 'copy', '-an'],
  }));
  assert.equal(info.name, 'geojson-feed');
  assert.equal(info.version, VERSION);
  assert.equal(info.refreshSeconds, 60);
  assert.deepEqual(info.inputOptions, ['-rtsp_transport', 'tcp']);
  assert.deepEqual(info.outputOptions, ['-c:v', 'copy', '-an']);

  const defaults = await c.init(JSON.stringify({ url: 'http://gis.example/x' }));
  assert.equal(defaults.refreshSeconds, 300);
  assert.deepEqual(defaults.inputOptions, []);
  assert.deepEqual(defaults.outputOptions, ['-c', 'copy']);

  for (const [config, message] of [
    ['', 'invalid config: field "url" is missing'],
    ['{"url": 5}', 'invalid config: field "url" must be a string, not a number'],
    ['{"url": "ftp://x"}', 'invalid config: field "url" must be an http:// or https:// URL, not "ftp://x"'],
    [`{"url": "${URL_}", "refresh": 5}`, 'invalid config: field "refresh" is unknown'],
    [`{"url": "${URL_}", "properties": {"lat": "y"}}`, 'invalid config: field "properties.lat" is unknown'],
    [`{"url": "${URL_}", "properties": {"key": 1}}`, 'invalid config: field "properties.key" must be a string, not a number'],
    [`{"url": "${URL_}", "online_values": "on"}`, 'invalid config: field "online_values" must be a list of strings, not a string'],
    [`{"url": "${URL_}", "headers": {"a": 1}}`, 'invalid config: field "headers.a" must be a string, not a number'],
    [`{"url": "${URL_}", "headers": {"bad header": "x"}}`, 'invalid config: field "headers.bad header" is not a valid header name'],
    [`{"url": "${URL_}", "headers": {"User-Agent": "x"}}`, 'invalid config: field "headers.User-Agent" is set by the host and cannot be configured'],
    [`{"url": "${URL_}", "headers": {"X-Key": "x"}, "secret_headers": {"x-key": "K"}}`, 'invalid config: field "secret_headers.x-key" repeats headers.x-key'],
    [`{"url": "${URL_}", "secret_headers": {"x-key": " "}}`, 'invalid config: field "secret_headers.x-key" must name a secret of the instance'],
    [`{"url": "${URL_}", "input_options": "-re"}`, 'invalid config: field "input_options" must be a list of strings, not a string'],
    [`{"url": "${URL_}", "refresh_seconds": -1}`, 'invalid config: field "refresh_seconds" must be an integer from 0 to 4294967295, not -1'],
    ['{"url": ', 'invalid config: not JSON: '],
  ]) {
    await assert.rejects(c.init(config), (e) => {
      assert.equal(e.code, 'invalid-config', `${config}: ${e.message}`);
      assert.ok(e.message.startsWith(message), `${config}: ${e.message}`);
      return true;
    });
  }
});

test('describe, and transform-metadata keeps the value (the SDK default)', async () => {
  const c = component(new MockHost());
  const d = c.describe();
  assert.equal(d.name, 'geojson-feed');
  assert.equal(d.refreshSeconds, 300);
  assert.equal(await c.transformMetadata(JSON.stringify({ url: URL_ }), '1', '{"lat": 1}'), '{"lat":1}');
  await assert.rejects(c.transformMetadata(JSON.stringify({ url: URL_ }), '1', 'nope'), { code: 'parse' });
});

test('the version is package.json\'s', () => {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
  assert.equal(VERSION, pkg.version);
});

test('the demo document (www/demo/cameras.geojson) lists four lavfi cameras, one offline', async () => {
  const host = new MockHost().respond('http://127.0.0.1:8000/demo/cameras.geojson', 200, DEMO);
  const streams = await component(host).listStreams(JSON.stringify({ url: 'http://127.0.0.1:8000/demo/cameras.geojson' }));
  assert.equal(streams.length, 4);
  assert.deepEqual(host.logged('warn'), []);
  assert.equal(streams.filter((s) => !s.online).length, 1);
  for (const s of streams) {
    assert.match(s.source, /^[a-z0-9]+=size=\d+x\d+:rate=\d+/, `${s.key}: a lavfi graph`);
    assert.ok(s.geo && s.name !== s.key, s.key);
  }
});

test('the logic runs natively through MockHost.run, as in the Rust SDK', () => {
  const host = new MockHost().respond(URL_, 200, SAMPLE);
  const config = parseConfig(feed, CONFIG);
  assert.equal(config.properties.key, 'id');
  assert.deepEqual(request(config).headers, [['accept', 'application/geo+json, application/json;q=0.9']]);
  const streams = host.run(() => feed.listStreams(config));
  assert.equal(streams.length, 3);
  assert.throws(() => feed.listStreams(config), (e) => e instanceof ProviderError && /^no DSS host/.test(e.message), 'outside run(): no host');
});

test('helpers', () => {
  const cfg = parseConfig(feed, { url: URL_ });
  assert.equal(isOnline(cfg, undefined), true);
  assert.equal(isOnline(cfg, ''), true);
  assert.equal(isOnline(cfg, ' OFF '), false);
  assert.equal(isOnline(cfg, false), false);
  assert.equal(isOnline(cfg, 0), false);
  assert.equal(isOnline(cfg, 'Ligado'), true);
  const only = parseConfig(feed, { url: URL_, online_values: ['Ligado', 'true'] });
  assert.equal(isOnline(only, 'ligado'), true);
  assert.equal(isOnline(only, true), true);
  assert.equal(isOnline(only, 'Desligado'), false);
  assert.equal(isOnline(only, null), true, 'a missing status is online');
  assert.deepEqual(pointGeo({ type: 'Point', coordinates: [10, 20] }), { geo: { lat: 20, lon: 10 } });
  assert.match(pointGeo({ type: 'Point', coordinates: ['10', 20] }).error, /not \[lon, lat\] numbers/);
  assert.match(pointGeo(null).error, /no geometry/);
});

test('at most 20 skipped features are logged one by one, then a summary', async () => {
  const features = Array.from({ length: 50 }, (_, i) => ({ type: 'Feature', geometry: point(0, 0), properties: { id: `bad key ${i}` } }));
  features.push({ type: 'Feature', geometry: point(0, 0), properties: { id: 'good', source: 'rtsp://cams.example/good' } });
  const host = new MockHost().respond(URL_, 200, collection(...features));
  const streams = await component(host).listStreams(CONFIG);
  assert.deepEqual(streams.map((s) => s.key), ['good']);
  const warnings = host.logged('warn');
  assert.equal(warnings.length, 21);
  assert.equal(warnings[20], 'skipped 30 more features (only the first 20 are logged)');
});

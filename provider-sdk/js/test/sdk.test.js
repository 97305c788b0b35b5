import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import {
  ConfigReader, defineProvider, exportProvider, fetchJson, host, httpGet, httpGetOk, httpRequest, httpRequestOk,
  INTERFACE_VERSION, isReservedHeader, isSecret, isValidKey, now, providerInfo, ProviderError, secret, stream, text, toWitRequest,
} from '../index.js';
import { HostRefusal, MockHost } from '../testing.js';

const def = (listStreams, extra = {}) =>
  defineProvider({ describe: () => providerInfo('t', '1.0.0', 'test'), listStreams, ...extra });

test('the SDK is written for the version of ../wit/provider.wit', () => {
  const wit = readFileSync(new URL('../../wit/provider.wit', import.meta.url), 'utf8');
  assert.match(wit, new RegExp(`^package dss:provider@${INTERFACE_VERSION.replaceAll('.', '\\.')};$`, 'm'));
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
  assert.equal(pkg.version, INTERFACE_VERSION);
});

test('records are normalized: defaults filled, tags from objects and pairs', async () => {
  const p = exportProvider(def(() => [
    { key: 'a', source: 'rtsp://x/a' },
    stream('b', 'rtsp://x/b', 'B', { tags: { n: 1, s: 'x', o: { a: true } }, geo: { lat: 1, lon: 2 } }),
    stream('c', 'rtsp://x/c', undefined, { tags: [['k', 'v']], online: 0 }),
  ]), new MockHost(), { patch: false });
  const [a, b, c] = await p.listStreams('{}');
  assert.deepEqual(a, { key: 'a', source: 'rtsp://x/a', name: 'a', geo: undefined, online: true, inputOptions: [], tags: [] });
  assert.deepEqual(b.tags, [{ key: 'n', value: '1' }, { key: 's', value: 'x' }, { key: 'o', value: '{"a":true}' }]);
  assert.deepEqual(b.geo, { lat: 1, lon: 2 });
  assert.deepEqual(c.tags, [{ key: 'k', value: 'v' }]);
  assert.equal(c.name, 'c');
  assert.equal(c.online, false);
});

test('describe and init fill in the provider info', async () => {
  const p = exportProvider(def(() => [], {
    describe: () => ({ name: 'n', version: '1', description: 'd', extra: { a: 1 } }),
    init: (config, info) => ({ ...info, refreshSeconds: 60 }),
  }), new MockHost(), { patch: false });
  const want = { name: 'n', version: '1', description: 'd', inputOptions: [], outputOptions: ['-c', 'copy'], refreshSeconds: 0, extra: [{ key: 'a', value: '1' }] };
  assert.deepEqual(p.describe(), want);
  assert.deepEqual(await p.init('{}'), { ...want, refreshSeconds: 60 });
});

test('wrong types become internal errors instead of traps', async () => {
  const cases = [
    [() => [{ key: 1, source: 's' }], 'stream 0: key must be a string, not a number'],
    [() => [{ key: 'k', source: 's', inputOptions: ['-re', 5] }], 'stream 0 (k): inputOptions[1] must be a string, not a number'],
    [() => [{ key: 'k', source: 's', geo: { lat: '1', lon: 2 } }], 'stream 0 (k): geo needs numeric lat and lon'],
    [() => ({}), 'listStreams must return an array of streams'],
    [() => null.x, "TypeError: Cannot read properties of null (reading 'x')"],
    [() => { throw 'bare'; }, 'thrown: bare'],
  ];
  for (const [fn, message] of cases) {
    const p = exportProvider(def(fn), new MockHost(), { patch: false });
    await assert.rejects(p.listStreams('{}'), (e) => {
      assert.equal(e.code, 'internal');
      assert.ok(e.message.startsWith(message), e.message);
      assert.ok(!(e instanceof Error), 'a plain record, which the bindings lower as the WIT error');
      return true;
    });
  }
});

test('config readers name the field; unknown fields are refused', async () => {
  const p = exportProvider(def(() => [], {
    config: (c) => ({
      mode: c.oneOf('mode', ['a', 'b'], 'a'),
      n: c.u32('n', 1),
      on: c.bool('on', false),
      url: c.url('url', null),
      headers: c.stringMap('headers', {}),
      nested: c.table('nested', (t) => ({ x: t.number('x', 0.5) })),
    }),
  }), new MockHost(), { patch: false });
  assert.deepEqual(await p.listStreams(''), []);
  for (const [cfg, msg] of [
    ['{"mode":"c"}', 'invalid config: field "mode" must be one of "a", "b", not "c"'],
    ['{"n":1.5}', 'invalid config: field "n" must be an integer from 0 to 4294967295, not 1.5'],
    ['{"on":"yes"}', 'invalid config: field "on" must be true or false, not a string'],
    ['{"url":"ftp://x/y"}', 'invalid config: field "url" must be an http:// or https:// URL, not "ftp://x/y"'],
    ['{"headers":{"a":1}}', 'invalid config: field "headers.a" must be a string, not a number'],
    ['{"headers":["a"]}', 'invalid config: field "headers" must be a table of strings, not an array'],
    ['{"nested":{"x":"1"}}', 'invalid config: field "nested.x" must be a number, not a string'],
    ['{"nested":[]}', 'invalid config: field "nested" must be a table, not an array'],
    ['[]', 'invalid config: the configuration must be a table, not an array'],
    ['{"zz":1}', 'invalid config: field "zz" is unknown (known: "mode", "n", "on", "url", "headers", "nested")'],
    ['{"mode":', 'invalid config: not JSON: '],
  ]) {
    await assert.rejects(p.listStreams(cfg), (e) => {
      assert.equal(e.code, 'invalid-config', `${cfg}: ${e.message}`);
      assert.ok(e.message.startsWith(msg), `${cfg}: ${e.message}`);
      return true;
    });
  }
  const r = new ConfigReader({ url: 'HTTPS://Example.org/a', h: { Accept: 'x' } });
  assert.equal(r.url('url'), 'HTTPS://Example.org/a');
  assert.deepEqual(r.stringMap('h'), { Accept: 'x' });
  assert.equal(r.has('missing'), false);
});

test('GET helpers: refusals, status, JSON, clock', () => {
  const m = new MockHost()
    .respond('http://h/ok', 200, { a: 1 })
    .respond('http://h/bad', 200, 'x')
    .respond('http://h/404', 404, 'nope')
    .fail('http://h/no', 'host h is not in allow_hosts')
    .at(42);
  m.run(() => {
    assert.deepEqual(host.fetchJson('http://h/ok'), { a: 1 });
    assert.equal(httpGet('http://h/ok').contentType, 'application/json');
    assert.equal(httpGet('http://h/404').status, 404);
    assert.equal(httpGet('http://h/404').ok, false);
    assert.throws(() => httpGetOk('http://h/404'), { code: 'upstream', message: 'GET http://h/404: HTTP status 404' });
    assert.throws(() => fetchJson('http://h/bad'), (e) => e instanceof ProviderError && e.code === 'parse'
      && e.message.startsWith('GET http://h/bad: body is not JSON: '));
    assert.throws(() => httpGet('http://h/no'), { code: 'upstream', message: 'GET http://h/no: host h is not in allow_hosts' });
    assert.equal(now(), 42);
    assert.equal(host.nowMs(), 42);
    host.warn('w');
  });
  assert.deepEqual(m.urls, ['http://h/ok', 'http://h/ok', 'http://h/404', 'http://h/404', 'http://h/404', 'http://h/bad', 'http://h/no']);
  assert.ok(m.requests.every((r) => r.call === 'http-get' && r.method === 'GET'));
  assert.deepEqual(m.logged('warn'), ['w']);
});

test('httpRequest: methods, text and secret headers, bodies, as the WIT record', () => {
  assert.deepEqual(toWitRequest({ url: 'https://api.test/q', headers: { accept: 'application/json', 'x-api-key': secret('CAMS_KEY') } }), {
    method: 'get',
    url: 'https://api.test/q',
    headers: [
      { name: 'accept', value: { tag: 'text', val: 'application/json' } },
      { name: 'x-api-key', value: { tag: 'secret', val: 'CAMS_KEY' } },
    ],
    body: undefined,
  });
  const post = toWitRequest({ method: 'POST', url: 'https://api.test/q', headers: [['authorization', secret('TOKEN')]], json: { q: 1 } });
  assert.equal(post.method, 'post');
  assert.deepEqual(post.headers, [
    { name: 'authorization', value: { tag: 'secret', val: 'TOKEN' } },
    { name: 'content-type', value: { tag: 'text', val: 'application/json' } },
  ]);
  assert.equal(new TextDecoder().decode(post.body), '{"q":1}');
  assert.deepEqual(toWitRequest({ url: 'u', headers: [{ name: 'a', value: text('b') }], body: 'é' }).body, new Uint8Array([0xc3, 0xa9]));
  assert.ok(isSecret(secret('X')) && !isSecret('X') && !isSecret(text('X')));
  for (const [req, message] of [
    [{ method: 'put', url: 'u' }, 'httpRequest: method "put" is not supported (get or post)'],
    [{ url: 5 }, 'httpRequest: url must be a string, not a number'],
    [{ url: 'u', headers: { a: null } }, 'header "a": the value must be a string or secret("NAME"), not null'],
    [{ url: 'u', headers: 'a: b' }, 'request headers must be an object or a list, not a string'],
    [{ url: 'u', body: 'x', json: {} }, 'httpRequest: give body or json, not both'],
    [{ url: 'u', body: { a: 1 } }, 'request body must be a string or bytes, not a table (use json: for a JSON body)'],
  ]) {
    assert.throws(() => toWitRequest(req), { code: 'internal', message });
  }
  assert.throws(() => secret(''), { code: 'internal' });
});

test('MockHost records secret headers by name and answers like the host', () => {
  const url = 'https://api.test/cams';
  const m = new MockHost()
    .withSecrets({ CAMS_KEY: 'not-visible-to-the-module' })
    .respond(url, 200, '[1]', { headers: { Link: '<https://api.test/cams?page=2>; rel="next"', 'X-Rate': '1' } })
    .respond(url, 201, 'created', { method: 'post' });
  m.run(() => {
    const r = httpRequestOk({ url, headers: { 'X-Api-Key': secret('CAMS_KEY'), accept: 'application/json' } });
    assert.equal(r.header('link'), '<https://api.test/cams?page=2>; rel="next"');
    assert.equal(r.header('LINK'), r.header('Link'));
    assert.equal(r.header('missing'), undefined);
    assert.deepEqual(r.headers, [['link', '<https://api.test/cams?page=2>; rel="next"'], ['x-rate', '1']]);
    assert.deepEqual(r.headerAll('x-rate'), ['1']);
    assert.deepEqual(r.json(), [1]);
    const p = httpRequest({ method: 'post', url, body: 'q=1', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    assert.equal(p.status, 201);
    assert.equal(p.text(), 'created');
    assert.throws(() => httpRequest({ url, headers: { 'x-api-key': secret('OTHER') } }),
      { code: 'upstream', message: `GET ${url}: header x-api-key: secret "OTHER" is not in this instance's [secrets] (it has: CAMS_KEY)` });
    assert.throws(() => httpRequest({ url, headers: { 'User-Agent': 'me' } }),
      { code: 'upstream', message: `GET ${url}: header user-agent is set by the host and cannot be sent` });
    assert.throws(() => httpRequest({ url, headers: { 'Proxy-Foo': 'x' } }), { message: /header proxy-foo is set by the host/ });
    const many = Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`x-h${i}`, 'v']));
    assert.throws(() => httpRequest({ url, headers: many }), { message: `GET ${url}: 33 headers: at most 32 per request` });
  });
  const [get, post] = m.requests;
  assert.equal(get.call, 'http-request');
  assert.deepEqual(get.headers, [{ name: 'X-Api-Key', secret: 'CAMS_KEY' }, { name: 'accept', text: 'application/json' }]);
  assert.deepEqual(get.header('x-api-key'), { name: 'X-Api-Key', secret: 'CAMS_KEY' });
  assert.equal(get.body, undefined);
  assert.equal(post.method, 'POST');
  assert.equal(post.bodyText(), 'q=1');
  assert.equal(m.requests.length, 6);
});

test('non-2xx answers are upstream errors naming the request', () => {
  const m = new MockHost()
    .respond('https://api.test/a', 503, 'busy', { headers: { 'retry-after': '30' } })
    .respond('https://api.test/b', (req) => ({ status: 200, body: { got: req.bodyJson() } }), undefined, { method: 'post' });
  m.run(() => {
    assert.throws(() => httpRequestOk({ url: 'https://api.test/a' }), { code: 'upstream', message: 'GET https://api.test/a: HTTP status 503' });
    assert.equal(httpRequest({ url: 'https://api.test/a' }).header('Retry-After'), '30');
    assert.deepEqual(fetchJson({ method: 'post', url: 'https://api.test/b', json: { q: 2 } }), { got: { q: 2 } });
    assert.throws(() => httpGet('https://api.test/b'), { code: 'upstream', message: 'GET https://api.test/b: no mock response for GET https://api.test/b' });
  });
});

test('a host message that names the request is not prefixed twice', () => {
  const m = new MockHost().fail('http://h/x', 'GET http://h/x: connecting to 127.0.0.1:80: Connection refused');
  m.run(() => assert.throws(() => httpGet('http://h/x'), { message: 'GET http://h/x: connecting to 127.0.0.1:80: Connection refused' }));
  assert.ok(isReservedHeader('Host') && isReservedHeader('proxy-x') && !isReservedHeader('accept'));
});

test('a thrown HostRefusal in a respond function is the host refusing', () => {
  const m = new MockHost().respond('http://h/x', () => { throw new HostRefusal('too many requests in one call'); });
  m.run(() => assert.throws(() => httpGet('http://h/x'), { code: 'upstream', message: 'GET http://h/x: too many requests in one call' }));
});

test('exportProvider installs its host for each call only', async () => {
  const a = new MockHost().at(1);
  const b = new MockHost().at(2);
  const pa = exportProvider(def(() => [stream(String(now()), 's')]), a, { patch: false });
  const pb = exportProvider(def(() => [stream(String(now()), 's')]), b, { patch: false });
  assert.equal((await pa.listStreams('{}'))[0].key, '1');
  assert.equal((await pb.listStreams('{}'))[0].key, '2');
  assert.throws(() => now(), { code: 'internal', message: /^no DSS host/ });
  assert.throws(() => host.info('x'), { code: 'internal' });
});

test('keys', () => {
  assert.ok(isValidKey('a-1_b.c'));
  for (const k of ['', '.hidden', 'a b', 'é', 'x'.repeat(65), 5]) assert.ok(!isValidKey(k), String(k));
  assert.ok(isValidKey('x'.repeat(64)));
});

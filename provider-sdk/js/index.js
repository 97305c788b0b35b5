// dss-provider-sdk (JavaScript): write DSS stream providers as plain ES modules.
//
// A provider is `defineProvider({ describe, config, init, listStreams, transformMetadata })`
// exported as the module's default export. `build.js` (bin `dss-provider-build`) turns it into a
// component of the world `dss:provider/dss-provider@0.2.0` (`../wit/provider.wit`, the one
// source of truth shared with the host and the Rust SDK); natively (Node) the same module runs
// in tests, with the host answered by `MockHost` (`dss-provider-sdk/testing`).
//
// Types: index.d.ts. Guide: README.md.

/** The version of the WIT interface this SDK builds against (checked by build.js against ../wit). */
export const INTERFACE_VERSION = '0.2.0';

// ---------------------------------------------------------------- errors

const ERROR_CODES = ['invalid-config', 'upstream', 'parse', 'internal'];

/** A failure reported to the operator: the WIT `error` record, throwable. */
export class ProviderError extends Error {
  constructor(code, message) {
    if (!ERROR_CODES.includes(code)) {
      throw new TypeError(`error code ${JSON.stringify(code)} is not one of ${ERROR_CODES.join(', ')}`);
    }
    super(message);
    this.name = 'ProviderError';
    this.code = code;
  }
  /** The configuration is missing something or is malformed. */
  static config(message) { return new ProviderError('invalid-config', message); }
  /** An upstream (HTTP) request failed or was refused by the host. */
  static upstream(message) { return new ProviderError('upstream', message); }
  /** Upstream data could not be parsed. */
  static parse(message) { return new ProviderError('parse', message); }
  /** Anything else. */
  static internal(message) { return new ProviderError('internal', message); }
}

/** Any thrown value as the WIT `error` record (unexpected exceptions are `internal`). */
export function toWitError(e) {
  if (e instanceof ProviderError) return { code: e.code, message: String(e.message) };
  // Duck-typed: errors thrown inside the component's bindings come from another realm.
  if (e && typeof e === 'object' && typeof e.message === 'string') {
    if (ERROR_CODES.includes(e.code) && e.name === 'ProviderError') return { code: e.code, message: e.message };
    const where = (e.stack || '').split('\n').find((l) => l.trim()) || '';
    return { code: 'internal', message: `${e.name || 'Error'}: ${e.message}${where ? ` (at ${where.trim()})` : ''}` };
  }
  return { code: 'internal', message: `thrown: ${safeString(e)}` };
}

// ---------------------------------------------------------------- host

let witHost = null; // the `dss:provider/host@0.2.0` import (or a MockHost)

/** Installs the host functions; returns the previous ones. Used by `exportProvider` and `MockHost`. */
export function setHost(h) {
  const prev = witHost;
  witHost = h;
  return prev;
}

function current() {
  if (!witHost) {
    throw ProviderError.internal('no DSS host: in tests, run the code inside MockHost.run() or through exportProvider(provider, mockHost)');
  }
  return witHost;
}

const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error'];
const utf8Decoder = new TextDecoder();
const utf8Encoder = new TextEncoder();

// `METHOD URL: cause` for a refused or failed request. The component binding throws a
// ComponentError whose `payload` is the host's message, which may already name the request.
function refusal(method, url, e) {
  let cause;
  if (e && e.payload !== undefined) cause = safeString(e.payload);
  else if (e && typeof e.message === 'string') cause = e.message;
  else cause = safeString(e);
  const what = `${method.toUpperCase()} ${url}`;
  return ProviderError.upstream(cause.startsWith(`${what}: `) ? cause : `${what}: ${cause}`);
}

// ------------------------------------------------ header values

/**
 * A header value naming one of the instance's secrets (its `[secrets]` table): the host puts
 * the secret's value in the request; the module never sees it and the host never logs it.
 */
export function secret(name) {
  if (typeof name !== 'string' || name === '') {
    throw ProviderError.internal(`secret(): the name must be a non-empty string, not ${typeName(name)}`);
  }
  return Object.freeze({ tag: 'secret', val: name });
}

/** A header value sent as this text (a plain string means the same). */
export function text(value) {
  if (typeof value !== 'string') {
    throw ProviderError.internal(`text(): the value must be a string, not ${typeName(value)}`);
  }
  return Object.freeze({ tag: 'text', val: value });
}

/**
 * Request headers the host sets itself (framing, routing, identity) and refuses from a provider,
 * as the DSS host's HTTP gate does; any `proxy-*` header too.
 */
export const RESERVED_HEADERS = Object.freeze([
  'host', 'content-length', 'transfer-encoding', 'connection', 'keep-alive', 'upgrade', 'te', 'trailer',
  'expect', 'user-agent', 'proxy-authorization', 'proxy-connection',
]);

/** True for a header name the host refuses (`RESERVED_HEADERS`, `proxy-*`; any case). */
export function isReservedHeader(name) {
  const n = String(name).toLowerCase();
  return RESERVED_HEADERS.includes(n) || n.startsWith('proxy-');
}

/** True for what `secret(name)` returns. */
export function isSecret(value) {
  return value !== null && typeof value === 'object' && value.tag === 'secret' && typeof value.val === 'string';
}

function headerValue(name, v) {
  if (typeof v === 'string') return { tag: 'text', val: v };
  if (typeof v === 'number' && Number.isFinite(v)) return { tag: 'text', val: String(v) };
  if (v !== null && typeof v === 'object' && (v.tag === 'text' || v.tag === 'secret') && typeof v.val === 'string') {
    return { tag: v.tag, val: v.val };
  }
  throw ProviderError.internal(`header ${JSON.stringify(name)}: the value must be a string or secret("NAME"), not ${typeName(v)}`);
}

/** Headers given as `{ name: value }`, `[name, value]` pairs or `{ name, value }` records → WIT `header`s. */
function headerList(headers) {
  if (headers === undefined || headers === null) return [];
  let pairs;
  if (Array.isArray(headers)) {
    pairs = headers.map((h) => (Array.isArray(h) ? h : [h?.name, h?.value]));
  } else if (typeof headers === 'object') {
    pairs = Object.entries(headers);
  } else {
    throw ProviderError.internal(`request headers must be an object or a list, not ${typeName(headers)}`);
  }
  return pairs.map(([name, value]) => {
    if (typeof name !== 'string' || name === '') {
      throw ProviderError.internal(`request header names must be non-empty strings, not ${safeString(name)}`);
    }
    return { name, value: headerValue(name, value) };
  });
}

function bodyBytes(body) {
  if (body === undefined || body === null) return undefined;
  if (typeof body === 'string') return utf8Encoder.encode(body);
  if (body instanceof Uint8Array) return body;
  if (body instanceof ArrayBuffer) return new Uint8Array(body);
  if (ArrayBuffer.isView(body)) return new Uint8Array(body.buffer, body.byteOffset, body.byteLength);
  throw ProviderError.internal(`request body must be a string or bytes, not ${typeName(body)} (use json: for a JSON body)`);
}

/** A request as given to `httpRequest` → the WIT `http-request` record. */
export function toWitRequest(req) {
  if (req === null || typeof req !== 'object') {
    throw ProviderError.internal(`httpRequest takes { method, url, headers, body }, not ${typeName(req)}`);
  }
  const method = String(req.method ?? 'get').toLowerCase();
  if (method !== 'get' && method !== 'post') {
    throw ProviderError.internal(`httpRequest: method ${JSON.stringify(req.method)} is not supported (get or post)`);
  }
  if (typeof req.url !== 'string') {
    throw ProviderError.internal(`httpRequest: url must be a string, not ${typeName(req.url)}`);
  }
  const headers = headerList(req.headers);
  let body = bodyBytes(req.body);
  if (req.json !== undefined) {
    if (body !== undefined) throw ProviderError.internal('httpRequest: give body or json, not both');
    body = utf8Encoder.encode(JSON.stringify(req.json));
    if (!headers.some((h) => h.name.toLowerCase() === 'content-type')) {
      headers.push({ name: 'content-type', value: { tag: 'text', val: 'application/json' } });
    }
  }
  return { method, url: req.url, headers, body };
}

// ------------------------------------------------ responses

/** A response of `httpGet` / `httpRequest`. */
export class HttpResponse {
  constructor(r, method = 'get', url = '') {
    /** The HTTP status code of the final response (after redirects). */
    this.status = r.status;
    /** The `content-type` header, if any. */
    this.contentType = r.contentType ?? undefined;
    /** Every header as `[lower-case name, value]`, in the order received. */
    this.headers = Array.isArray(r.headers) ? r.headers.map(([n, v]) => [String(n).toLowerCase(), String(v)]) : [];
    /** The body (bounded by the host). */
    this.body = r.body instanceof Uint8Array ? r.body : new Uint8Array(r.body ?? []);
    /** The request's method (upper case) and URL, for messages. */
    this.method = method.toUpperCase();
    this.url = url;
  }

  /** True for a 2xx status. */
  get ok() { return this.status >= 200 && this.status <= 299; }

  /** The first value of header `name` (any case), or undefined. */
  header(name) {
    const n = String(name).toLowerCase();
    const h = this.headers.find(([k]) => k === n);
    return h ? h[1] : undefined;
  }

  /** Every value of header `name` (any case), in order. */
  headerAll(name) {
    const n = String(name).toLowerCase();
    return this.headers.filter(([k]) => k === n).map(([, v]) => v);
  }

  /** The body as text (UTF-8, invalid sequences replaced). */
  text() { return utf8Decoder.decode(this.body); }

  /** The body parsed as JSON; a body that is not JSON is a `parse` error naming the request. */
  json() {
    try {
      return JSON.parse(this.text());
    } catch (e) {
      throw ProviderError.parse(`${this.method} ${this.url}: body is not JSON: ${e.message}`);
    }
  }

  /** This response, or an `upstream` error naming the request when the status is not 2xx. */
  expectOk() {
    if (!this.ok) throw ProviderError.upstream(`${this.method} ${this.url}: HTTP status ${this.status}`);
    return this;
  }
}

// ------------------------------------------------ host functions

/** Writes a line to the host's log, attributed to this provider instance. */
export function log(level, message) {
  if (!LOG_LEVELS.includes(level)) level = 'info';
  current().log(level, typeof message === 'string' ? message : safeString(message));
}

/**
 * GET `url` through the host (only the instance's `allow_hosts` are reachable). Returns the
 * response whatever its status; a refusal or network failure throws an `upstream` error naming
 * the cause.
 */
export function httpGet(url) {
  const u = String(url);
  let r;
  try {
    r = current().httpGet(u);
  } catch (e) {
    if (e instanceof ProviderError) throw e;
    throw refusal('get', u, e);
  }
  return new HttpResponse(r, 'get', u);
}

/** `httpGet` that also requires a 2xx status (else an `upstream` error naming it). */
export function httpGetOk(url) {
  return httpGet(url).expectOk();
}

/**
 * Sends `{ method = 'get', url, headers, body, json }` through the host, under the same checks
 * as `httpGet`. Header values are strings or `secret('NAME')`. Returns the response whatever
 * its status; a refusal or failure (an unknown secret, a refused header) is an `upstream` error.
 */
export function httpRequest(request) {
  const req = toWitRequest(request);
  let r;
  try {
    r = current().httpRequest(req);
  } catch (e) {
    if (e instanceof ProviderError) throw e;
    throw refusal(req.method, req.url, e);
  }
  return new HttpResponse(r, req.method, req.url);
}

/** `httpRequest` that also requires a 2xx status (else an `upstream` error naming it). */
export function httpRequestOk(request) {
  return httpRequest(request).expectOk();
}

const send = (r) => (typeof r === 'string' ? httpGetOk(r) : httpRequestOk(r));

/** The body of a 2xx response to a URL (GET) or a request, as text. */
export function fetchText(urlOrRequest) {
  return send(urlOrRequest).text();
}

/** The body of a 2xx response to a URL (GET) or a request, parsed as JSON (else a `parse` error). */
export function fetchJson(urlOrRequest) {
  return send(urlOrRequest).json();
}

/**
 * Wall-clock time from the host, in milliseconds since the Unix epoch. Use it (or `Date.now()`,
 * which the component routes here) rather than anything else: without WASI clocks the engine's
 * own clock is frozen at build time.
 */
export function now() {
  return Number(current().nowMs());
}

/** The host functions as one object (the names above, plus a function per log level). */
export const host = {
  log,
  trace(message) { log('trace', message); },
  debug(message) { log('debug', message); },
  info(message) { log('info', message); },
  warn(message) { log('warn', message); },
  error(message) { log('error', message); },
  httpGet,
  httpGetOk,
  httpRequest,
  httpRequestOk,
  fetchText,
  fetchJson,
  now,
  /** The same as `now()` (the WIT name). */
  nowMs: now,
};

// ---------------------------------------------------------------- records

const KEY_RE = /^[A-Za-z0-9_.-]{1,64}$/;

/** True when `key` is a valid stream key: `[A-Za-z0-9_.-]+`, no leading dot, at most 64 characters. */
export function isValidKey(key) {
  return typeof key === 'string' && KEY_RE.test(key) && !key.startsWith('.');
}

/** A provider description (like Rust's `ProviderInfo::new`): `-c copy` output, no input options, no refresh. */
export function providerInfo(name, version, description, more = {}) {
  return {
    name, version, description,
    inputOptions: [],
    outputOptions: ['-c', 'copy'],
    refreshSeconds: 0,
    extra: [],
    ...more,
  };
}

/** A stream (the WIT `stream-source`): online, no position, options or tags unless given. */
export function stream(key, source, name = key, more = {}) {
  return { key, source, name, geo: undefined, online: true, inputOptions: [], tags: [], ...more };
}

// ---------------------------------------------------------------- config

function typeName(v) {
  if (v === null) return 'null';
  if (v === undefined) return 'undefined';
  if (Array.isArray(v)) return 'an array';
  if (v instanceof Uint8Array) return 'bytes';
  if (typeof v === 'object') return 'a table';
  return `a ${typeof v}`;
}

/**
 * Reads one table of the instance configuration, naming the field in every error
 * (`invalid-config`). Every getter takes a default; without one the field is required.
 * `finish()` (called for you by `defineProvider`) refuses fields nobody read.
 */
export class ConfigReader {
  constructor(obj, path = '') {
    if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) {
      throw ProviderError.config(`invalid config: ${path ? `field "${path}"` : 'the configuration'} must be a table, not ${typeName(obj)}`);
    }
    this.obj = obj;
    this.path = path;
    this.read = new Set();
    this.children = [];
  }

  /** The dotted name of field `key`, for messages. */
  name(key) { return this.path ? `${this.path}.${key}` : key; }

  /** An `invalid-config` error about field `key`. */
  fail(key, what) { return ProviderError.config(`invalid config: field "${this.name(key)}" ${what}`); }

  /** True when field `key` is present (and marks it read). */
  has(key) {
    this.read.add(key);
    return this.obj[key] !== undefined && this.obj[key] !== null;
  }

  /** The raw value (or `def`; required when `def` is omitted). */
  value(key, def) {
    this.read.add(key);
    const v = this.obj[key];
    if (v === undefined || v === null) {
      if (arguments.length < 2) throw this.fail(key, 'is missing');
      return def;
    }
    return v;
  }

  string(key, ...def) {
    const v = this.value(key, ...def);
    if (def.length && v === def[0]) return v;
    if (typeof v !== 'string') throw this.fail(key, `must be a string, not ${typeName(v)}`);
    return v;
  }

  /** An `http://` or `https://` URL. */
  url(key, ...def) {
    const v = this.string(key, ...def);
    if (def.length && v === def[0]) return v;
    if (!/^https?:\/\/[^/?#\s]+/i.test(v)) throw this.fail(key, `must be an http:// or https:// URL, not ${JSON.stringify(v)}`);
    return v;
  }

  /** A string that must be one of `choices`. */
  oneOf(key, choices, ...def) {
    const v = this.string(key, ...def);
    if (def.length && v === def[0]) return v;
    if (!choices.includes(v)) throw this.fail(key, `must be one of ${choices.map((c) => JSON.stringify(c)).join(', ')}, not ${JSON.stringify(v)}`);
    return v;
  }

  number(key, ...def) {
    const v = this.value(key, ...def);
    if (def.length && v === def[0]) return v;
    if (typeof v !== 'number' || !Number.isFinite(v)) throw this.fail(key, `must be a number, not ${typeName(v)}`);
    return v;
  }

  /** An integer in 0..=4294967295 (a WIT u32). */
  u32(key, ...def) {
    const v = this.number(key, ...def);
    if (def.length && v === def[0]) return v;
    if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw this.fail(key, `must be an integer from 0 to 4294967295, not ${v}`);
    return v;
  }

  bool(key, ...def) {
    const v = this.value(key, ...def);
    if (def.length && v === def[0]) return v;
    if (typeof v !== 'boolean') throw this.fail(key, `must be true or false, not ${typeName(v)}`);
    return v;
  }

  stringList(key, ...def) {
    const v = this.value(key, ...def);
    if (def.length && v === def[0]) return v;
    if (!Array.isArray(v)) throw this.fail(key, `must be a list of strings, not ${typeName(v)}`);
    v.forEach((s, i) => {
      if (typeof s !== 'string') throw this.fail(`${key}[${i}]`, `must be a string, not ${typeName(s)}`);
    });
    return v.slice();
  }

  /** A table whose values are all strings (e.g. `headers = { accept = "application/json" }`), as an object. */
  stringMap(key, ...def) {
    const v = this.value(key, ...def);
    if (def.length && v === def[0]) return v;
    if (typeof v !== 'object' || Array.isArray(v)) throw this.fail(key, `must be a table of strings, not ${typeName(v)}`);
    const out = {};
    for (const [k, s] of Object.entries(v)) {
      if (typeof s !== 'string') throw this.fail(`${key}.${k}`, `must be a string, not ${typeName(s)}`);
      out[k] = s;
    }
    return out;
  }

  /** A nested table, read by `fn(reader)`; absent: `fn` reads an empty table (its defaults). */
  table(key, fn) {
    const v = this.value(key, {});
    const child = new ConfigReader(v, this.name(key));
    const out = fn(child);
    this.children.push(child);
    return out;
  }

  /** Refuses fields that were never read (like serde's `deny_unknown_fields`). */
  finish() {
    for (const k of Object.keys(this.obj)) {
      if (!this.read.has(k)) {
        const known = [...this.read].map((x) => JSON.stringify(x)).join(', ');
        throw this.fail(k, `is unknown${known ? ` (known: ${known})` : ''}`);
      }
    }
    this.children.forEach((c) => c.finish());
  }
}

/** Parses an instance configuration (JSON text or an object) the way the exported functions do. */
export function parseConfig(provider, config) {
  let obj = config;
  if (typeof config === 'string') {
    if (config.trim() === '') {
      obj = {};
    } else {
      try {
        obj = JSON.parse(config);
      } catch (e) {
        throw ProviderError.config(`invalid config: not JSON: ${e.message}`);
      }
    }
  }
  if (!provider.config) return obj;
  const reader = new ConfigReader(obj);
  const out = provider.config(reader);
  reader.finish();
  return out;
}

// ---------------------------------------------------------------- definition

/**
 * Defines a provider. `describe` is required, and `listStreams(config)`; `config(reader)`
 * turns the instance's `[config]` table into the object the other functions get (default:
 * the table as is); `init(config, info)` checks it and returns the info (default: `info`,
 * i.e. `describe()`); `transformMetadata(config, key, value)` defaults to the identity.
 * Errors are thrown (`ProviderError`); any other exception is reported as `internal`.
 */
export function defineProvider(def) {
  if (!def || typeof def !== 'object') throw new TypeError('defineProvider takes an object');
  for (const f of ['describe', 'listStreams']) {
    if (typeof def[f] !== 'function') throw new TypeError(`defineProvider: "${f}" must be a function`);
  }
  for (const f of ['config', 'init', 'transformMetadata']) {
    if (def[f] !== undefined && typeof def[f] !== 'function') throw new TypeError(`defineProvider: "${f}" must be a function`);
  }
  return {
    describe: def.describe,
    config: def.config,
    init: def.init ?? ((config, info) => info),
    listStreams: def.listStreams,
    transformMetadata: def.transformMetadata ?? ((config, key, value) => value),
  };
}

function strings(list, what) {
  if (list === undefined || list === null) return [];
  if (!Array.isArray(list)) throw ProviderError.internal(`${what} must be a list of strings`);
  return list.map((s, i) => {
    if (typeof s !== 'string') throw ProviderError.internal(`${what}[${i}] must be a string, not ${typeName(s)}`);
    return s;
  });
}

function tags(t, what) {
  if (t === undefined || t === null) return [];
  const pairs = Array.isArray(t)
    ? t.map((x) => (Array.isArray(x) ? x : [x?.key, x?.value]))
    : Object.entries(t);
  return pairs.map(([key, value], i) => {
    if (typeof key !== 'string') throw ProviderError.internal(`${what}[${i}] has no string key`);
    return { key, value: typeof value === 'string' ? value : safeString(value) };
  });
}

function checkInfo(i) {
  if (!i || typeof i !== 'object') throw ProviderError.internal('describe/init must return a provider info object');
  for (const f of ['name', 'version', 'description']) {
    if (typeof i[f] !== 'string') throw ProviderError.internal(`provider info: ${f} must be a string`);
  }
  const refresh = i.refreshSeconds ?? 0;
  if (!Number.isInteger(refresh) || refresh < 0 || refresh > 0xffffffff) {
    throw ProviderError.internal(`provider info: refreshSeconds must be a u32, not ${safeString(refresh)}`);
  }
  return {
    name: i.name,
    version: i.version,
    description: i.description,
    inputOptions: strings(i.inputOptions, 'inputOptions'),
    outputOptions: strings(i.outputOptions ?? ['-c', 'copy'], 'outputOptions'),
    refreshSeconds: refresh,
    extra: tags(i.extra, 'extra'),
  };
}

const NO_STRINGS = Object.freeze([]);

function checkStrings(list, what) {
  if (list === undefined || list === null) return NO_STRINGS;
  if (!Array.isArray(list)) throw ProviderError.internal(`${what} must be a list of strings`);
  for (let i = 0; i < list.length; i++) {
    if (typeof list[i] !== 'string') throw ProviderError.internal(`${what}[${i}] must be a string, not ${typeName(list[i])}`);
  }
  return list;
}

function checkTags(t, what) {
  if (t === undefined || t === null) return NO_STRINGS;
  if (Array.isArray(t)) {
    // Fast path: already `{ key, value }` records with string members.
    let ok = true;
    for (let i = 0; i < t.length && ok; i++) {
      const x = t[i];
      ok = x !== null && typeof x === 'object' && !Array.isArray(x) && typeof x.key === 'string' && typeof x.value === 'string';
    }
    if (ok) return t;
  }
  return tags(t, what);
}

// Validates a stream record in place (filling defaults) so that the generated bindings never
// see a wrong type: they would trap the whole call without a message.
function checkStream(s, n) {
  if (!s || typeof s !== 'object') throw ProviderError.internal(`stream ${n} is not an object`);
  if (typeof s.key !== 'string') throw ProviderError.internal(`stream ${n}: key must be a string, not ${typeName(s.key)}`);
  if (typeof s.source !== 'string') throw ProviderError.internal(`stream ${n} (${s.key}): source must be a string, not ${typeName(s.source)}`);
  if (s.name === undefined || s.name === null) s.name = s.key;
  else if (typeof s.name !== 'string') throw ProviderError.internal(`stream ${n} (${s.key}): name must be a string`);
  if (s.geo === null || s.geo === undefined) s.geo = undefined;
  else if ((typeof s.geo.lat !== 'number' || typeof s.geo.lon !== 'number')) {
    throw ProviderError.internal(`stream ${n} (${s.key}): geo needs numeric lat and lon`);
  }
  s.online = s.online === undefined ? true : Boolean(s.online);
  s.inputOptions = checkStrings(s.inputOptions, `stream ${n} (${s.key}): inputOptions`);
  s.tags = checkTags(s.tags, `stream ${n} (${s.key}): tags`);
  return s;
}

function safeString(v) {
  if (typeof v === 'string') return v;
  try {
    const j = JSON.stringify(v);
    return j === undefined ? String(v) : j;
  } catch {
    return String(v);
  }
}

// Without WASI clocks SpiderMonkey's clock is frozen at build time and `performance.now()`
// traps; `console` writes nowhere without stdio; `fetch` needs wasi:http. Route them to the host.
function patchGlobals() {
  const g = globalThis;
  const RealDate = g.Date;
  try {
    RealDate.now = now;
    // `new Date()` and `Date()` read the host's clock too; everything else is the real Date.
    g.Date = new Proxy(RealDate, {
      construct: (target, args, newTarget) => Reflect.construct(target, args.length ? args : [now()], newTarget),
      apply: () => new RealDate(now()).toString(),
    });
  } catch { /* read-only: keep */ }
  try {
    if (g.performance) Object.defineProperty(g.performance, 'now', { value: now, configurable: true, writable: true });
  } catch { /* keep */ }
  const fmt = (args) => args.map((a) => (typeof a === 'string' ? a : safeString(a))).join(' ');
  g.console = {
    ...(g.console || {}),
    trace: (...a) => log('trace', fmt(a)),
    debug: (...a) => log('debug', fmt(a)),
    log: (...a) => log('info', fmt(a)),
    info: (...a) => log('info', fmt(a)),
    warn: (...a) => log('warn', fmt(a)),
    error: (...a) => log('error', fmt(a)),
  };
  g.fetch = () => {
    throw ProviderError.internal('fetch() is not available in a DSS provider: use httpRequest / httpGet / fetchJson from dss-provider-sdk');
  };
}

/**
 * The object to export as the component's `dss:provider/provider` interface: WIT-shaped
 * functions (JSON strings in, records out, errors thrown as WIT `error` records) around a
 * provider made with `defineProvider`. `witHost` is the `dss:provider/host@0.2.0` import
 * (or a `MockHost`). `build.js` generates the module that calls this.
 */
export function exportProvider(provider, witHostImport, { patch = true } = {}) {
  if (patch) {
    // In the component: installed once, before the snapshot; every call runs with it.
    setHost(witHostImport);
    patchGlobals();
  }
  // Natively the host is installed for the duration of each call, then the previous one is
  // restored, so that several exported providers (or MockHosts) can live in one test process.
  const wrap = (fn) => async (...args) => {
    const prev = setHost(witHostImport);
    try {
      return await fn(...args);
    } catch (e) {
      // A plain object (not an Error) is what the bindings lower as the WIT error record.
      throw toWitError(e);
    } finally {
      setHost(prev);
    }
  };
  return {
    describe() {
      const prev = setHost(witHostImport);
      try {
        return checkInfo(provider.describe());
      } finally {
        setHost(prev);
      }
    },
    init: wrap(async (config) => {
      const c = parseConfig(provider, config);
      return checkInfo(await provider.init(c, checkInfo(provider.describe())));
    }),
    listStreams: wrap(async (config) => {
      const c = parseConfig(provider, config);
      const list = await provider.listStreams(c);
      if (!Array.isArray(list)) throw ProviderError.internal('listStreams must return an array of streams');
      for (let i = 0; i < list.length; i++) checkStream(list[i], i);
      return list;
    }),
    transformMetadata: wrap(async (config, key, metadata) => {
      const c = parseConfig(provider, config);
      let value;
      try {
        value = JSON.parse(metadata);
      } catch (e) {
        throw ProviderError.parse(`metadata is not JSON: ${e.message}`);
      }
      const out = await provider.transformMetadata(c, key, value);
      const json = JSON.stringify(out);
      if (json === undefined) throw ProviderError.internal('transformMetadata returned no JSON value');
      return json;
    }),
  };
}

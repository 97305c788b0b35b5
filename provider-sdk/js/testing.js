// Native tests: a stand-in for the DSS host, shaped like the `dss:provider/host@0.2.0` import
// (the same functions the component binding gives the SDK), that answers HTTP requests from
// canned responses and records what the provider did.
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { INTERFACE_VERSION, isReservedHeader, setHost } from './index.js';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Raised for a refused request, like the component binding's ComponentError (`payload` = the host's message). */
export class HostRefusal extends Error {
  constructor(payload) {
    super(payload);
    this.name = 'HostRefusal';
    this.payload = payload;
  }
}

/** Request headers one request may carry, as in the host. */
const MAX_HEADERS = 32;

function bytes(body) {
  if (body === undefined || body === null) return new Uint8Array();
  if (typeof body === 'string') return encoder.encode(body);
  if (body instanceof Uint8Array) return body;
  return encoder.encode(JSON.stringify(body));
}

function headerPairs(headers) {
  if (!headers) return [];
  const pairs = Array.isArray(headers) ? headers : Object.entries(headers);
  return pairs.map(([n, v]) => [String(n).toLowerCase(), String(v)]);
}

/**
 * A response as the host returns it. `body`: a string, bytes, or any other value sent as JSON
 * (with `content-type: application/json` unless one is given).
 */
function makeResponse(status, body, opts = {}) {
  if (typeof opts === 'string') opts = { contentType: opts };
  let contentType = opts.contentType;
  if (contentType === undefined && body !== undefined && body !== null && typeof body !== 'string' && !(body instanceof Uint8Array)) {
    contentType = 'application/json';
  }
  const headers = headerPairs(opts.headers);
  const ct = headers.find(([n]) => n === 'content-type');
  if (ct && contentType === undefined) contentType = ct[1];
  if (!ct && contentType !== undefined) headers.unshift(['content-type', contentType]);
  return { status, contentType, headers, body: bytes(body) };
}

/** One request the provider made, as recorded by `MockHost`. */
export class RecordedRequest {
  constructor(call, method, url, headers, body) {
    /** `http-get` or `http-request`: which host function was called. */
    this.call = call;
    /** `GET` or `POST`. */
    this.method = method;
    this.url = url;
    /** `{ name, text }` or `{ name, secret }` (the secret's NAME: the module never has its value). */
    this.headers = headers;
    /** The body, or undefined. */
    this.body = body;
  }

  /** The header `name` (any case): `{ name, text }`, `{ name, secret }` or undefined. */
  header(name) {
    const n = String(name).toLowerCase();
    return this.headers.find((h) => h.name.toLowerCase() === n);
  }

  /** The body as UTF-8 text (undefined without a body). */
  bodyText() {
    return this.body === undefined ? undefined : decoder.decode(this.body);
  }

  /** The body parsed as JSON (undefined without a body). */
  bodyJson() {
    const t = this.bodyText();
    return t === undefined ? undefined : JSON.parse(t);
  }
}

export class MockHost {
  constructor() {
    /** Every request, in order (`RecordedRequest`s). */
    this.requests = [];
    /** `[level, message]` lines logged. */
    this.logs = [];
    /** What `now-ms` answers (a BigInt, as the binding gives it). */
    this.now = 1_700_000_000_000n;
    /** The instance's secrets (name → value) when set with `withSecrets`; null: any name is accepted. */
    this.secrets = null;
    this.routes = new Map();
  }

  /** The URLs requested, in order. */
  get urls() {
    return this.requests.map((r) => r.url);
  }

  /**
   * Answers `url` (any method, or only `opts.method`) with `status` and `body` (a string, bytes,
   * or a value sent as JSON). `opts`: `{ contentType, headers, method }` (or a content type).
   * Instead of a status, a function `(request: RecordedRequest) => ({ status, body, contentType,
   * headers })` answers each request (it may throw a `HostRefusal`).
   */
  respond(url, status, body, opts = {}) {
    if (typeof opts === 'string') opts = { contentType: opts };
    const answer = typeof status === 'function'
      ? (req) => {
        const r = status(req);
        return makeResponse(r.status ?? 200, r.body, r);
      }
      : () => makeResponse(status, body, opts);
    this.routes.set(routeKey(opts.method, url), answer);
    return this;
  }

  /** Refuses `url` (any method, or only `method`) with the host's `message` (e.g. "host x is not in allow_hosts"). */
  fail(url, message, method = undefined) {
    this.routes.set(routeKey(method, url), () => {
      throw new HostRefusal(message);
    });
    return this;
  }

  /** Declares the instance's secrets: requests naming another secret then fail, as in the host. */
  withSecrets(secrets) {
    this.secrets = { ...secrets };
    return this;
  }

  /** Sets the clock (milliseconds since the epoch). */
  at(ms) {
    this.now = BigInt(ms);
    return this;
  }

  // --- the WIT-shaped host functions (what the component binding provides)

  log(level, message) {
    this.logs.push([level, message]);
  }

  httpGet(url) {
    const req = new RecordedRequest('http-get', 'GET', url, [], undefined);
    this.requests.push(req);
    return this.answer(req);
  }

  httpRequest(request) {
    const headers = (request.headers ?? []).map(({ name, value }) => (
      value.tag === 'secret' ? { name, secret: value.val } : { name, text: value.val }
    ));
    const body = request.body === undefined || request.body === null ? undefined : Uint8Array.from(request.body);
    const req = new RecordedRequest('http-request', request.method.toUpperCase(), request.url, headers, body);
    this.requests.push(req);
    // The host's checks, with its messages.
    if (headers.length > MAX_HEADERS) throw new HostRefusal(`${headers.length} headers: at most ${MAX_HEADERS} per request`);
    for (const h of headers) {
      const lower = h.name.toLowerCase();
      if (isReservedHeader(lower)) {
        throw new HostRefusal(`header ${lower} is set by the host and cannot be sent`);
      }
      if (h.secret !== undefined && this.secrets !== null && !Object.hasOwn(this.secrets, h.secret)) {
        const names = Object.keys(this.secrets).sort();
        const hint = names.length ? ` (it has: ${names.join(', ')})` : ' (it has none)';
        throw new HostRefusal(`header ${lower}: secret ${JSON.stringify(h.secret)} is not in this instance's [secrets]${hint}`);
      }
    }
    return this.answer(req);
  }

  nowMs() {
    return this.now;
  }

  answer(req) {
    const route = this.routes.get(routeKey(req.method, req.url)) ?? this.routes.get(routeKey(undefined, req.url));
    if (!route) throw new HostRefusal(`no mock response for ${req.method} ${req.url}`);
    return route(req);
  }

  // --- inspection

  /** Messages logged at `level`. */
  logged(level) {
    return this.logs.filter(([l]) => l === level).map(([, m]) => m);
  }

  /** Runs `fn` with this host installed; returns (or resolves to) its result. */
  run(fn) {
    const prev = setHost(this);
    let out;
    try {
      out = fn();
    } catch (e) {
      setHost(prev);
      throw e;
    }
    if (out && typeof out.then === 'function') {
      return out.finally(() => setHost(prev));
    }
    setHost(prev);
    return out;
  }
}

function routeKey(method, url) {
  return method ? `${String(method).toUpperCase()} ${url}` : `* ${url}`;
}

// ---------------------------------------------------------------- the built component

function findJco(from) {
  for (let d = resolve(from); ; d = dirname(d)) {
    for (const p of ['node_modules/@bytecodealliance/jco/dist/api.js',
      'node_modules/@bytecodealliance/componentize-js/node_modules/@bytecodealliance/jco/dist/api.js']) {
      if (existsSync(join(d, p))) return join(d, p);
    }
    if (dirname(d) === d) return null;
  }
}

const loaded = new Map(); // wasm path → Promise<{ instantiate, modules }>

async function transpiled(wasmPath) {
  const jcoPath = findJco(process.cwd()) ?? findJco(dirname(wasmPath));
  if (!jcoPath) throw new Error('loadComponent needs jco (installed with @bytecodealliance/componentize-js): npm install');
  const { transpile } = await import(pathToFileURL(jcoPath));
  const { files } = await transpile(await readFile(wasmPath), {
    name: 'provider', instantiation: 'async', noTypescript: true, quiet: true,
  });
  const dir = await mkdtemp(join(tmpdir(), 'dss-component-'));
  try {
    await writeFile(join(dir, 'provider.js'), files['provider.js']);
    const { instantiate } = await import(pathToFileURL(join(dir, 'provider.js')));
    const modules = new Map();
    for (const [name, bytes] of Object.entries(files)) {
      if (name.endsWith('.wasm')) modules.set(name, await WebAssembly.compile(bytes));
    }
    return { instantiate, modules };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * Loads a built component (`.wasm`) in Node (V8, through jco's transpiler) with `mockHost` as its
 * `dss:provider/host@0.2.0` import, and returns its `provider` export shaped like
 * `exportProvider(...)`'s: the same tests can run on the module and on the component. Each call
 * runs on a fresh instance, as in the DSS host. A smoke test of the build and of the canonical
 * ABI (records, variants, errors), not of the host: no limits, allow-lists or secrets' values
 * (`dss providers check` is the acceptance test).
 */
export async function loadComponent(wasmPath, mockHost = new MockHost()) {
  const path = resolve(wasmPath);
  if (!loaded.has(path)) loaded.set(path, transpiled(path));
  const { instantiate, modules } = await loaded.get(path);
  const h = {
    log: (level, message) => mockHost.log(level, message),
    httpGet: (url) => mockHost.httpGet(url),
    httpRequest: (request) => mockHost.httpRequest(request),
    nowMs: () => mockHost.nowMs(),
  };
  const imports = {};
  for (const v of ['', `@${INTERFACE_VERSION}`]) {
    imports[`dss:provider/host${v}`] = h;
    imports[`dss:provider/types${v}`] = {};
  }
  const fresh = async () => (await instantiate((name) => modules.get(name), imports)).provider;
  // The bindings throw a ComponentError whose payload is the WIT error: rethrow the record.
  const call = (name) => async (...args) => {
    const p = await fresh();
    try {
      return await p[name](...args);
    } catch (e) {
      throw e && e.payload !== undefined ? e.payload : e;
    }
  };
  return {
    /** Instantiation is asynchronous: unlike the export's, this `describe` returns a promise. */
    describe: call('describe'),
    init: call('init'),
    listStreams: call('listStreams'),
    transformMetadata: call('transformMetadata'),
  };
}

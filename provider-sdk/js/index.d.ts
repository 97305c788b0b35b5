// Types of dss-provider-sdk (JavaScript): the WIT records of `dss:provider@0.2.0`
// (../wit/provider.wit) as the ComponentizeJS bindings see them, and the SDK's API.

// ------------------------------------------------------------- WIT types

/** `types.tag`: a free-form key/value pair. */
export interface Tag { key: string; value: string }

/** `types.geo`: WGS 84 degrees. */
export interface Geo { lat: number; lon: number }

/** `types.stream-source`: one stream the provider offers. */
export interface StreamSource {
  /** `[A-Za-z0-9_.-]+`, no leading dot, at most 64 characters; the stream id is `<instance>-<key>`. */
  key: string;
  /** What FFmpeg reads (`-i`): a URL, or a lavfi graph when the input options say `-f lavfi`. */
  source: string;
  /** Human-readable name. */
  name: string;
  /** Where the camera is, when known. */
  geo: Geo | undefined;
  /** False: the host does not start FFmpeg for it. */
  online: boolean;
  /** FFmpeg options before `-i` for this stream only (empty: the provider's defaults). */
  inputOptions: string[];
  /** Free-form metadata shown by the API. */
  tags: Tag[];
}

/** `types.provider-info`: what a provider is, and its defaults. */
export interface ProviderInfo {
  /** Short name of the provider type, e.g. `traffic-feed`. */
  name: string;
  /** Version of the provider module (semver). */
  version: string;
  /** One line on what it provides. */
  description: string;
  /** Default FFmpeg options before `-i`. */
  inputOptions: string[];
  /** Default FFmpeg options after `-i` (default `-c copy`). */
  outputOptions: string[];
  /** Seconds between listings (u32); 0: only at start and on configuration change. */
  refreshSeconds: number;
  /** Free-form information for the API. */
  extra: Tag[];
}

/** `types.error-code`. */
export type ErrorCode = 'invalid-config' | 'upstream' | 'parse' | 'internal';

/** `types.error`: a failure reported to the operator. */
export interface WitError { code: ErrorCode; message: string }

/** `host.log-level`. */
export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error';

/** `host.method`. */
export type WitMethod = 'get' | 'post';

/** `host.header-value`: text, or the NAME of one of the instance's secrets. */
export type HeaderValue =
  | { readonly tag: 'text'; readonly val: string }
  | { readonly tag: 'secret'; readonly val: string };

/** What `secret(name)` returns. */
export type SecretHeaderValue = { readonly tag: 'secret'; readonly val: string };

/** `host.header`. */
export interface WitHeader { name: string; value: HeaderValue }

/** `host.http-request` as the binding takes it. */
export interface WitHttpRequest {
  method: WitMethod;
  url: string;
  headers: WitHeader[];
  body: Uint8Array | undefined;
}

/** `host.http-response` as the binding returns it. */
export interface WitHttpResponse {
  status: number;
  contentType: string | undefined;
  /** `[lower-case name, value]`, in the order received. */
  headers: Array<[string, string]>;
  body: Uint8Array;
}

/**
 * The `dss:provider/host@0.2.0` import. `http-get` and `http-request` throw
 * `{ payload: string }` (a ComponentError) on refusal or failure.
 */
export interface WitHost {
  log(level: LogLevel, message: string): void;
  httpGet(url: string): WitHttpResponse;
  httpRequest(request: WitHttpRequest): WitHttpResponse;
  nowMs(): bigint;
}

/** The `dss:provider/provider@0.2.0` export: JSON strings in, records out, errors thrown as `WitError`. */
export interface WitProvider {
  describe(): ProviderInfo;
  init(config: string): Promise<ProviderInfo>;
  listStreams(config: string): Promise<StreamSource[]>;
  transformMetadata(config: string, key: string, metadata: string): Promise<string>;
}

// ------------------------------------------------------------- SDK: errors

export const INTERFACE_VERSION: '0.2.0';

/** A failure reported to the operator (throw it from any provider function). */
export class ProviderError extends Error {
  constructor(code: ErrorCode, message: string);
  readonly code: ErrorCode;
  /** `invalid-config`: the configuration is missing something or is malformed. */
  static config(message: string): ProviderError;
  /** `upstream`: an upstream (HTTP) request failed or was refused by the host. */
  static upstream(message: string): ProviderError;
  /** `parse`: upstream data could not be parsed. */
  static parse(message: string): ProviderError;
  /** `internal`: anything else. */
  static internal(message: string): ProviderError;
}

/** Any thrown value as a WIT error (non-`ProviderError`s are `internal`, with their message and location). */
export function toWitError(e: unknown): WitError;

// ------------------------------------------------------------- SDK: host

/** A request header's value: text, or `secret('NAME')`. */
export type HeaderInput = string | number | HeaderValue;

/** Request headers: `{ name: value }`, `[name, value]` pairs or `{ name, value }` records. */
export type HeadersInit =
  | Record<string, HeaderInput>
  | Array<[string, HeaderInput]>
  | Array<{ name: string; value: HeaderInput }>;

/** What `httpRequest` takes. */
export interface HttpRequestInit {
  /** `get` (default) or `post`, any case. */
  method?: 'get' | 'post' | 'GET' | 'POST';
  /** An `http://` or `https://` URL to one of the instance's `allow_hosts`. */
  url: string;
  /** Headers besides those the host sets (`RESERVED_HEADERS` and `proxy-*` are refused); at most 32. */
  headers?: HeadersInit;
  /** The body: text (sent as UTF-8) or bytes. */
  body?: string | Uint8Array | ArrayBuffer | ArrayBufferView;
  /** A value sent as a JSON body, with `content-type: application/json` unless a content-type header is given. */
  json?: unknown;
}

/** A response of `httpGet` / `httpRequest`. */
export class HttpResponse {
  constructor(r: WitHttpResponse, method?: string, url?: string);
  /** The status code of the final response (after redirects). */
  readonly status: number;
  /** The `content-type` header, if any. */
  readonly contentType: string | undefined;
  /** Every header as `[lower-case name, value]`, in the order received. */
  readonly headers: Array<[string, string]>;
  /** The body (bounded by the host). */
  readonly body: Uint8Array;
  /** The request's method (`GET`/`POST`) and URL, used in messages. */
  readonly method: string;
  readonly url: string;
  /** True for a 2xx status. */
  readonly ok: boolean;
  /** The first value of header `name` (any case). */
  header(name: string): string | undefined;
  /** Every value of header `name` (any case), in order. */
  headerAll(name: string): string[];
  /** The body as UTF-8 text. */
  text(): string;
  /** The body parsed as JSON; not JSON: a `parse` ProviderError naming the request. */
  json<T = any>(): T;
  /** This response, or an `upstream` ProviderError when the status is not 2xx. */
  expectOk(): this;
}

/** A header value naming the instance's secret `name`: the host sends its value; the module never sees it. */
export function secret(name: string): SecretHeaderValue;
/** A header value sent as this text (a plain string means the same). */
export function text(value: string): HeaderValue;
/** Request headers the host sets itself and refuses from a provider (and any `proxy-*`). */
export const RESERVED_HEADERS: readonly string[];
/** True for a header name the host refuses (any case). */
export function isReservedHeader(name: string): boolean;
/** True for what `secret(name)` returns. */
export function isSecret(value: unknown): value is SecretHeaderValue;
/** The WIT `http-request` record for a request (what `httpRequest` sends). */
export function toWitRequest(request: HttpRequestInit): WitHttpRequest;

/** Writes a line to the host's log, attributed to this provider instance. */
export function log(level: LogLevel, message: unknown): void;
/** GET through the host: any status; a refusal or failure throws an `upstream` ProviderError naming the cause. */
export function httpGet(url: string): HttpResponse;
/** `httpGet` that requires a 2xx status (else `upstream`). */
export function httpGetOk(url: string): HttpResponse;
/** A request with a method, headers (text or `secret('NAME')`) and a body: any status; a refusal is `upstream`. */
export function httpRequest(request: HttpRequestInit): HttpResponse;
/** `httpRequest` that requires a 2xx status (else `upstream`). */
export function httpRequestOk(request: HttpRequestInit): HttpResponse;
/** The body of a 2xx response (GET of a URL, or a request) as text. */
export function fetchText(urlOrRequest: string | HttpRequestInit): string;
/** The body of a 2xx response (GET of a URL, or a request) parsed as JSON; not JSON: `parse`. */
export function fetchJson<T = any>(urlOrRequest: string | HttpRequestInit): T;
/** Milliseconds since the Unix epoch, from the host (the engine's own clock is frozen without WASI clocks). */
export function now(): number;

/** The host functions as one object. */
export const host: {
  log(level: LogLevel, message: unknown): void;
  trace(message: unknown): void;
  debug(message: unknown): void;
  info(message: unknown): void;
  warn(message: unknown): void;
  error(message: unknown): void;
  httpGet: typeof httpGet;
  httpGetOk: typeof httpGetOk;
  httpRequest: typeof httpRequest;
  httpRequestOk: typeof httpRequestOk;
  fetchText: typeof fetchText;
  fetchJson: typeof fetchJson;
  now: typeof now;
  /** The same as `now()`. */
  nowMs: typeof now;
};

/** Installs the host functions (a `WitHost` or `MockHost`); returns the previous ones. */
export function setHost(h: WitHost | null): WitHost | null;

// ------------------------------------------------------------- SDK: records

/** `[A-Za-z0-9_.-]+`, no leading dot, at most 64 characters. */
export function isValidKey(key: unknown): key is string;

/** Tags as `Tag`s, `[key, value]` pairs or `{ key: value }`; non-string values are JSON-encoded. */
export type TagsInit = Tag[] | Array<[string, unknown]> | Record<string, unknown>;

/** Stream fields a provider may leave out (defaults: name = key, online, no geo/options/tags). */
export interface StreamInit {
  key: string;
  source: string;
  name?: string;
  geo?: Geo | null;
  online?: boolean;
  inputOptions?: string[];
  tags?: TagsInit;
}

/** Provider information as `describe`/`init` may return it (missing lists: empty; output: `-c copy`). */
export interface ProviderInfoInit {
  name: string;
  version: string;
  description: string;
  inputOptions?: string[];
  outputOptions?: string[];
  refreshSeconds?: number;
  extra?: TagsInit;
}

/** Like Rust's `ProviderInfo::new`: `-c copy` output, no input options, no refresh. */
export function providerInfo(name: string, version: string, description: string, more?: Partial<ProviderInfo>): ProviderInfo;

/** An online stream with no position, options or tags unless given in `more`. */
export function stream(key: string, source: string, name?: string, more?: Partial<Omit<StreamInit, 'key' | 'source' | 'name'>>): StreamSource;

// ------------------------------------------------------------- SDK: configuration

/** Reads one table of the instance configuration; omit the default to make a field required. */
export class ConfigReader {
  constructor(obj: unknown, path?: string);
  /** The dotted name of a field, for messages. */
  name(key: string): string;
  /** An `invalid-config` ProviderError about a field. */
  fail(key: string, what: string): ProviderError;
  /** Whether the field is present (marks it read). */
  has(key: string): boolean;
  value(key: string, def?: unknown): unknown;
  string(key: string): string;
  string<D>(key: string, def: D): string | D;
  /** An `http://` or `https://` URL. */
  url(key: string): string;
  url<D>(key: string, def: D): string | D;
  oneOf<C extends string>(key: string, choices: readonly C[]): C;
  oneOf<C extends string, D>(key: string, choices: readonly C[], def: D): C | D;
  number(key: string): number;
  number<D>(key: string, def: D): number | D;
  /** An integer from 0 to 4294967295. */
  u32(key: string): number;
  u32<D>(key: string, def: D): number | D;
  bool(key: string): boolean;
  bool<D>(key: string, def: D): boolean | D;
  stringList(key: string): string[];
  stringList<D>(key: string, def: D): string[] | D;
  /** A table whose values are all strings. */
  stringMap(key: string): Record<string, string>;
  stringMap<D>(key: string, def: D): Record<string, string> | D;
  /** A nested table; absent, `fn` reads an empty one (its defaults). */
  table<T>(key: string, fn: (reader: ConfigReader) => T): T;
  /** Refuses unread fields (called by the SDK). */
  finish(): void;
}

// ------------------------------------------------------------- SDK: definition

type MaybePromise<T> = T | Promise<T>;

/** What `defineProvider` takes. `C` is the parsed configuration. */
export interface ProviderDefinition<C = Record<string, unknown>> {
  describe(): ProviderInfoInit;
  /** Reads the `[config]` table (default: the table as is). Unread fields are refused. */
  config?(reader: ConfigReader): C;
  /** Checks the configuration; `info` is a fresh `describe()` to adjust and return. */
  init?(config: C, info: ProviderInfo): MaybePromise<ProviderInfoInit>;
  listStreams(config: C): MaybePromise<StreamInit[]>;
  /** Default: the metadata unchanged. */
  transformMetadata?(config: C, key: string, metadata: unknown): MaybePromise<unknown>;
}

/** A defined provider: the same functions, with defaults filled in (callable in native tests). */
export interface Provider<C = Record<string, unknown>> {
  describe(): ProviderInfoInit;
  config: ((reader: ConfigReader) => C) | undefined;
  init(config: C, info: ProviderInfo): MaybePromise<ProviderInfoInit>;
  listStreams(config: C): MaybePromise<StreamInit[]>;
  transformMetadata(config: C, key: string, metadata: unknown): MaybePromise<unknown>;
}

export function defineProvider<C = Record<string, unknown>>(def: ProviderDefinition<C>): Provider<C>;

/** Parses a configuration (JSON text or an object) as the exported functions do. */
export function parseConfig<C>(provider: Provider<C>, config: string | object): C;

/**
 * The component's `provider` export around `provider`, with `witHost` installed for each call.
 * In the component (patch = true, the default) `Date`, `performance.now`, `console` and `fetch`
 * are routed to the host; in native tests pass `{ patch: false }`.
 */
export function exportProvider<C>(provider: Provider<C>, witHost: WitHost, options?: { patch?: boolean }): WitProvider;

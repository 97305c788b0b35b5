import type { LogLevel, ProviderInfo, StreamSource, WitHost, WitHttpRequest, WitHttpResponse } from './index.js';

/** Raised for a refused request, like the component binding's ComponentError. */
export class HostRefusal extends Error {
  constructor(payload: string);
  /** The host's message. */
  readonly payload: string;
}

/** A recorded request header: text, or the NAME of a secret (never its value). */
export type RecordedHeader = { name: string; text: string } | { name: string; secret: string };

/** One request the provider made. */
export class RecordedRequest {
  /** Which host function was called. */
  readonly call: 'http-get' | 'http-request';
  readonly method: 'GET' | 'POST';
  readonly url: string;
  readonly headers: RecordedHeader[];
  readonly body: Uint8Array | undefined;
  /** The header `name` (any case). */
  header(name: string): RecordedHeader | undefined;
  /** The body as UTF-8 text. */
  bodyText(): string | undefined;
  /** The body parsed as JSON. */
  bodyJson(): unknown;
}

/** A response a `respond` function returns; a body that is not a string or bytes is sent as JSON. */
export interface MockResponse {
  status?: number;
  body?: string | Uint8Array | unknown;
  contentType?: string;
  headers?: Record<string, string> | Array<[string, string]>;
}

/** Options of `respond`: response headers, and the only method answered (default: any). */
export interface RespondOptions {
  contentType?: string;
  headers?: Record<string, string> | Array<[string, string]>;
  method?: 'get' | 'post' | 'GET' | 'POST';
}

/** A stand-in for the DSS host in native tests (shaped like the `dss:provider/host@0.2.0` import). */
export class MockHost implements WitHost {
  /** Every request, in order. */
  requests: RecordedRequest[];
  /** The URLs requested, in order. */
  readonly urls: string[];
  /** `[level, message]` lines logged. */
  logs: Array<[LogLevel, string]>;
  /** What `now-ms` answers. */
  now: bigint;
  /** The declared secrets (name → value), or null: any secret name is accepted. */
  secrets: Record<string, string> | null;
  /** Answers `url` with a status and body (a string, bytes, or a value sent as JSON). */
  respond(url: string, status: number, body?: string | Uint8Array | unknown, options?: string | RespondOptions): this;
  /** Answers each request to `url` with what `fn` returns (it may throw a `HostRefusal`). */
  respond(url: string, fn: (request: RecordedRequest) => MockResponse, body?: undefined, options?: Pick<RespondOptions, 'method'>): this;
  /** Refuses `url` (any method, or only `method`) with the host's message. */
  fail(url: string, message: string, method?: 'get' | 'post' | 'GET' | 'POST'): this;
  /** Declares the instance's secrets: a request naming another one fails, as in the host. */
  withSecrets(secrets: Record<string, string>): this;
  /** Sets the clock (ms since the epoch). */
  at(ms: number | bigint): this;
  log(level: LogLevel, message: string): void;
  httpGet(url: string): WitHttpResponse;
  httpRequest(request: WitHttpRequest): WitHttpResponse;
  nowMs(): bigint;
  /** Messages logged at `level`. */
  logged(level: LogLevel): string[];
  /** Runs `fn` with this host installed (restoring the previous one after, also for a promise). */
  run<T>(fn: () => T): T;
}

/** The built component's `provider` export, run in Node. */
export interface LoadedComponent {
  describe(): Promise<ProviderInfo>;
  init(config: string): Promise<ProviderInfo>;
  listStreams(config: string): Promise<StreamSource[]>;
  transformMetadata(config: string, key: string, metadata: string): Promise<string>;
}

/**
 * Loads a built component in Node (V8, through jco's transpiler, installed with ComponentizeJS)
 * with `mockHost` as its host import; each call runs on a fresh instance; errors reject with the
 * WIT error record, as `exportProvider`'s do. A smoke test of the build, not of the DSS host.
 */
export function loadComponent(wasmPath: string, mockHost?: MockHost): Promise<LoadedComponent>;

// `geojson-feed`: cameras from a GeoJSON FeatureCollection downloaded through the host.
// A feature is a camera; its Point geometry is the camera's position; its properties give the
// key, name, source and status (the property names are configurable). See README.md.
//
// ```toml
// [config]
// url = "https://gis.example/cameras.geojson"      # required, http:// or https://
// properties = { key = "id", name = "name", source = "source", status = "status" }   # the defaults
// online_values = ["online", "ok"]                 # default: a missing status is online, and so is
//                                                  # any status but false, 0, "offline", "off", ...
// source_template = "rtsp://cams.example/{key}"    # for features without a source property
// tag_properties = ["district"]                    # properties copied into the stream's tags
// headers = { accept = "application/geo+json" }    # sent as text
// secret_headers = { "x-api-key" = "CAMS_KEY" }    # header → NAME of a secret of the instance
// refresh_seconds = 300
// input_options = ["-rtsp_transport", "tcp"]       # FFmpeg options before -i (default none)
// output_options = ["-c", "copy"]                  # FFmpeg options after -i (default -c copy)
// ```
//
// Without a key property the feature's own `id` member is the key. Features that cannot be
// listed (no or invalid key, duplicate key, no Point geometry, bad coordinates, no source) are
// skipped with a warning in the host's log; a document that is not a FeatureCollection is a
// `parse` error, and a non-2xx answer an `upstream` error.

import {
  defineProvider, host, httpRequestOk, isReservedHeader, isValidKey, providerInfo, ProviderError, secret, stream,
} from 'dss-provider-sdk';

/** @typedef {import('dss-provider-sdk').ConfigReader} ConfigReader */
/** @typedef {import('dss-provider-sdk').ProviderInfo} ProviderInfo */
/** @typedef {import('dss-provider-sdk').StreamSource} StreamSource */
/** @typedef {import('dss-provider-sdk').Tag} Tag */
/** @typedef {import('dss-provider-sdk').HttpRequestInit} HttpRequestInit */
/** @typedef {ReturnType<typeof config>} Config */

/** The module's version (kept equal to package.json's by a test). */
export const VERSION = '0.2.0';
/** Skipped features logged one by one per listing (the host keeps a bounded number of log lines a call). */
export const MAX_WARNINGS = 20;
/** Statuses that mean offline when the configuration has no `online_values` (compared lower-case). */
export const DEFAULT_OFFLINE = ['offline', 'off', 'false', '0', 'no', 'inactive', 'down', 'disabled'];
const ACCEPT = 'application/geo+json, application/json;q=0.9';

function info() {
  return providerInfo('geojson-feed', VERSION, 'Cameras from a GeoJSON FeatureCollection (Point features)', {
    refreshSeconds: 300,
  });
}

/** A status or online value as compared: trimmed, lower case. @param {unknown} v */
const norm = (v) => String(v).trim().toLowerCase();

/** The instance configuration, with its defaults. @param {ConfigReader} c */
function config(c) {
  const headers = c.stringMap('headers', {});
  const secretHeaders = c.stringMap('secret_headers', {});
  const seen = new Map();
  for (const [field, table] of [['headers', headers], ['secret_headers', secretHeaders]]) {
    for (const name of Object.keys(table)) {
      const n = name.toLowerCase();
      if (!/^[!#$%&'*+.^_`|~0-9a-z-]+$/.test(n)) throw c.fail(`${field}.${name}`, 'is not a valid header name');
      if (isReservedHeader(n)) throw c.fail(`${field}.${name}`, 'is set by the host and cannot be configured');
      if (seen.has(n)) throw c.fail(`${field}.${name}`, `repeats ${seen.get(n)}.${name}`);
      seen.set(n, field);
    }
  }
  for (const [name, s] of Object.entries(secretHeaders)) {
    if (s.trim() === '') throw c.fail(`secret_headers.${name}`, 'must name a secret of the instance');
  }
  const online = c.stringList('online_values', null);
  return {
    url: c.url('url'),
    properties: c.table('properties', (p) => ({
      key: p.string('key', 'id'),
      name: p.string('name', 'name'),
      source: p.string('source', 'source'),
      status: p.string('status', 'status'),
    })),
    onlineValues: online === null ? null : online.map(norm),
    sourceTemplate: c.string('source_template', null),
    tagProperties: c.stringList('tag_properties', []),
    headers,
    secretHeaders,
    refreshSeconds: c.u32('refresh_seconds', 300),
    inputOptions: c.stringList('input_options', null),
    outputOptions: c.stringList('output_options', null),
  };
}

/** @param {Config} cfg @param {ProviderInfo} info */
function init(cfg, info) {
  info.refreshSeconds = cfg.refreshSeconds;
  if (cfg.inputOptions) info.inputOptions = cfg.inputOptions;
  if (cfg.outputOptions) info.outputOptions = cfg.outputOptions;
  return info;
}

/**
 * The request for the document: configured headers as text, secret headers by name.
 * @param {Config} cfg
 * @returns {HttpRequestInit}
 */
export function request(cfg) {
  /** @type {Array<[string, string | ReturnType<typeof secret>]>} */
  const headers = Object.entries(cfg.headers);
  for (const [name, secretName] of Object.entries(cfg.secretHeaders)) headers.push([name, secret(secretName)]);
  if (!headers.some(([n]) => n.toLowerCase() === 'accept')) headers.unshift(['accept', ACCEPT]);
  return { method: 'get', url: cfg.url, headers };
}

/** @param {Config} cfg */
function listStreams(cfg) {
  const started = host.now();
  const doc = httpRequestOk(request(cfg)).json();
  const { streams, skipped } = parseFeatures(cfg, doc);
  host.debug(`${streams.length} cameras (${skipped} features skipped) from ${cfg.url} in ${host.now() - started} ms`);
  return streams;
}

/** @param {unknown} v @returns {string | undefined} */
function asText(v) {
  if (typeof v === 'string' && v.trim() !== '') return v.trim();
  if (typeof v === 'number' && Number.isFinite(v)) return String(v);
  return undefined;
}

/** @param {unknown} v @returns {string} */
function tagValue(v) {
  return typeof v === 'string' ? v : String(JSON.stringify(v));
}

/**
 * Whether a feature's status means online. A missing (or empty) status is online. With
 * `online_values`, only those values (any case) are online; without, everything is online but
 * false, 0 and `DEFAULT_OFFLINE`.
 * @param {Config} cfg @param {unknown} status
 */
export function isOnline(cfg, status) {
  if (status === undefined || status === null || (typeof status === 'string' && status.trim() === '')) return true;
  if (cfg.onlineValues) return cfg.onlineValues.includes(norm(status));
  if (typeof status === 'boolean') return status;
  if (typeof status === 'number') return status !== 0;
  return !DEFAULT_OFFLINE.includes(norm(status));
}

/**
 * The position of a Point geometry: `{ geo }` or `{ error }`.
 * @param {any} geometry
 * @returns {{ geo?: { lat: number, lon: number }, error?: string }}
 */
export function pointGeo(geometry) {
  if (geometry === undefined || geometry === null) return { error: 'no geometry (a Point is needed)' };
  if (typeof geometry !== 'object' || geometry.type !== 'Point') {
    return { error: `geometry is ${geometry && typeof geometry.type === 'string' ? geometry.type : typeName(geometry)}, not a Point` };
  }
  const c = geometry.coordinates;
  if (!Array.isArray(c) || c.length < 2 || typeof c[0] !== 'number' || typeof c[1] !== 'number') {
    return { error: 'Point coordinates are not [lon, lat] numbers' };
  }
  const [lon, lat] = c; // GeoJSON order: longitude first
  if (!(lat >= -90 && lat <= 90 && lon >= -180 && lon <= 180)) {
    return { error: `Point coordinates [${lon}, ${lat}] are out of range` };
  }
  return { geo: { lat, lon } };
}

/** @param {unknown} v */
function typeName(v) {
  return v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v;
}

/**
 * Turns a parsed GeoJSON document into streams; bad features are skipped with a warning.
 * @param {Config} cfg @param {any} doc
 * @returns {{ streams: StreamSource[], skipped: number }}
 */
export function parseFeatures(cfg, doc) {
  if (!doc || typeof doc !== 'object' || Array.isArray(doc) || doc.type !== 'FeatureCollection') {
    const what = doc && typeof doc === 'object' && !Array.isArray(doc) ? `type ${JSON.stringify(doc.type ?? null)}` : typeName(doc);
    throw ProviderError.parse(`${cfg.url}: not a GeoJSON FeatureCollection (${what})`);
  }
  if (!Array.isArray(doc.features)) {
    throw ProviderError.parse(`${cfg.url}: a FeatureCollection without a "features" array`);
  }
  const p = cfg.properties;
  /** @type {StreamSource[]} */
  const streams = [];
  const seen = new Set();
  let skipped = 0;
  /** @param {number} i @param {string | undefined} key @param {string} why */
  const skip = (i, key, why) => {
    if (++skipped <= MAX_WARNINGS) {
      host.warn(`skipping feature ${i}${key !== undefined ? ` (key ${JSON.stringify(key)})` : ''}: ${why}`);
    }
  };
  doc.features.forEach((/** @type {any} */ f, /** @type {number} */ i) => {
    if (!f || typeof f !== 'object' || f.type !== 'Feature') {
      return skip(i, undefined, 'not a GeoJSON Feature');
    }
    const props = f.properties && typeof f.properties === 'object' ? f.properties : {};
    const key = asText(props[p.key]) ?? asText(f.id);
    if (key === undefined) {
      return skip(i, undefined, `no "${p.key}" property and no feature id`);
    }
    if (!isValidKey(key)) {
      return skip(i, key, 'invalid key (want [A-Za-z0-9_.-], no leading dot, at most 64 characters)');
    }
    if (seen.has(key)) {
      return skip(i, key, 'duplicate key');
    }
    const { geo, error } = pointGeo(f.geometry);
    if (error) return skip(i, key, error);
    const name = asText(props[p.name]) ?? key;
    let source = asText(props[p.source]);
    if (source === undefined) {
      if (cfg.sourceTemplate === null) {
        return skip(i, key, `no "${p.source}" property and the config has no source_template`);
      }
      source = cfg.sourceTemplate.replaceAll('{key}', key).replaceAll('{name}', name);
    }
    /** @type {Tag[]} */
    const tags = [];
    const status = props[p.status];
    if (status !== undefined && status !== null) tags.push({ key: 'status', value: tagValue(status) });
    for (const t of cfg.tagProperties) {
      if (props[t] !== undefined && props[t] !== null) tags.push({ key: t, value: tagValue(props[t]) });
    }
    seen.add(key);
    streams.push(stream(key, source, name, { geo, online: isOnline(cfg, status), tags }));
  });
  if (skipped > MAX_WARNINGS) {
    host.warn(`skipped ${skipped - MAX_WARNINGS} more features (only the first ${MAX_WARNINGS} are logged)`);
  }
  return { streams, skipped };
}

export default defineProvider({ describe: info, config, init, listStreams });

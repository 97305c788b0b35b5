#!/usr/bin/env node
// dss-provider-build: builds a provider module (whose default export is `defineProvider(...)`)
// into a component of the world `dss:provider/dss-provider@0.2.0` (../wit, the one source of
// truth) with ComponentizeJS (SpiderMonkey/StarlingMonkey).
//
//   dss-provider-build src/my-provider.js -o my-provider.wasm [--wasi] [--keep]
//
// - Every optional WASI feature of ComponentizeJS is disabled (stdio random clocks http
//   fetch-event): the component imports only `dss:provider/host@0.2.0`. By default ComponentizeJS
//   imports wasi:http, which the DSS host does not link. `--wasi` keeps stdio, random and clocks
//   (the host links them with nothing granted; guest stderr is then logged, handy with traps).
// - ComponentizeJS does not resolve packages: this script stages the provider's module graph in
//   `.dss-build/` beside the output, with `dss-provider-sdk` (and any other package import) turned
//   into relative paths, generates the entry module (the counterpart of Rust's `export_provider!`)
//   and runs ComponentizeJS there.
// - ComponentizeJS is taken from the node_modules of the current directory (or a parent), where
//   the provider's package.json pins it. `jco componentize` is not used (broken in jco 1.35.0).
// - The component is written atomically (a temporary file, then a rename).
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, realpathSync } from 'node:fs';
import { copyFile, mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { basename, dirname, extname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { INTERFACE_VERSION } from './index.js';

const ALL_FEATURES = ['stdio', 'random', 'clocks', 'http', 'fetch-event'];
const sdkDir = realpathSync(dirname(fileURLToPath(import.meta.url)));
const witDir = resolve(sdkDir, '../wit');
const SDK_NAME = 'dss-provider-sdk';
const SDK_ENTRIES = { '': 'index.js', '/testing': 'testing.js' };

function fail(msg, code = 1) {
  console.error(`dss-provider-build: ${msg}`);
  process.exit(code);
}

function usage(msg) {
  if (msg) console.error(`dss-provider-build: ${msg}`);
  console.error('usage: dss-provider-build PROVIDER.js -o OUT.wasm [--wasi] [--keep]');
  process.exit(2);
}

// ------------------------------------------------------------------ arguments

const args = process.argv.slice(2);
let input, out, wasi = false, keep = false;
for (let i = 0; i < args.length; i++) {
  if (args[i] === '-o' || args[i] === '--out') out = args[++i];
  else if (args[i] === '--wasi') wasi = true;
  else if (args[i] === '--keep') keep = true;
  else if (args[i] === '-h' || args[i] === '--help') usage();
  else if (args[i].startsWith('-')) usage(`unknown option ${args[i]}`);
  else if (!input) input = args[i];
  else usage('one provider module only');
}
if (!input || !out) usage();
input = resolve(input);
out = resolve(out);
if (!existsSync(input)) usage(`${input} does not exist`);
input = realpathSync(input);

// ------------------------------------------------------------------ the interface

const witFile = join(witDir, 'provider.wit');
if (!existsSync(witFile)) fail(`the WIT interface is not at ${witFile} (the SDK must stay in provider-sdk/js)`);
const witVersion = /^\s*package\s+dss:provider@([0-9][^;\s]*)\s*;/m.exec(readFileSync(witFile, 'utf8'))?.[1];
if (witVersion !== INTERFACE_VERSION) {
  fail(`${witFile} is dss:provider@${witVersion}, but this SDK is written for ${INTERFACE_VERSION}`);
}

// ------------------------------------------------------------------ ComponentizeJS

function findComponentize(from) {
  for (let d = from; ; d = dirname(d)) {
    const p = join(d, 'node_modules/@bytecodealliance/componentize-js/src/componentize.js');
    if (existsSync(p)) return p;
    if (dirname(d) === d) return null;
  }
}
const cjsPath = findComponentize(process.cwd()) ?? findComponentize(dirname(input));
if (!cjsPath) fail('@bytecodealliance/componentize-js is not installed here: npm install (the provider\'s package.json pins it)');
const cjsRequire = createRequire(cjsPath);
const { componentize } = await import(pathToFileURL(cjsPath));
const cjsVersion = JSON.parse(readFileSync(join(dirname(cjsPath), '../package.json'), 'utf8')).version;

// ------------------------------------------------------------------ staging the module graph

const lexer = cjsRequire('es-module-lexer'); // a dependency of ComponentizeJS
await lexer.init;

const inside = (dir, file) => file === dir || file.startsWith(dir + sep);
const isRelative = (s) => s.startsWith('./') || s.startsWith('../') || s.startsWith('/');

/** What `spec`, imported by `from`, names: a file path, or null to leave it as is (`dss:…`, `node:…`). */
function target(spec, from) {
  if (spec === SDK_NAME || spec.startsWith(`${SDK_NAME}/`)) {
    const entry = SDK_ENTRIES[spec.slice(SDK_NAME.length)];
    if (!entry) throw new Error(`${relative(process.cwd(), from)}: ${SDK_NAME} has no export "${spec}"`);
    return join(sdkDir, entry);
  }
  if (isRelative(spec)) {
    const p = isAbsolute(spec) ? spec : resolve(dirname(from), spec);
    if (!existsSync(p)) throw new Error(`${relative(process.cwd(), from)}: imports "${spec}", which does not exist (ES modules need the full file name)`);
    return realpathSync(p);
  }
  if (/^[a-z][a-z0-9+.-]*:/i.test(spec)) return null; // dss:provider/host@…, node:…: the engine's business
  try {
    return realpathSync(createRequire(from).resolve(spec));
  } catch (e) {
    throw new Error(`${relative(process.cwd(), from)}: cannot resolve package "${spec}" (${e.code || e.message}); install it, import it by relative path, or bundle it`);
  }
}

const graph = new Map(); // file → { source, rewrites: [{ s, e, target }] }
const queue = [input, join(sdkDir, 'index.js')]; // the entry imports the SDK in any case
while (queue.length) {
  const file = queue.shift();
  if (graph.has(file)) continue;
  const source = readFileSync(file, 'utf8');
  const node = { source, rewrites: [] };
  graph.set(file, node);
  if (!['.js', '.mjs'].includes(extname(file))) continue;
  let imports;
  try {
    [imports] = lexer.parse(source, file);
  } catch (e) {
    // Node's parser says where (the lexer does not).
    const check = spawnSync(process.execPath, ['--input-type=module', '--check'], { input: source, encoding: 'utf8' });
    const where = check.stderr.split('\n    at ')[0].replace('[stdin]', relative(process.cwd(), file)).trim();
    fail(`${relative(process.cwd(), file)}: not an ES module this build understands:\n${where || e.message}`);
  }
  for (const imp of imports) {
    if (imp.d > -1) {
      // Modules load while the component is built (the snapshot); at call time there is no file
      // system, and StarlingMonkey's loader traps (`unreachable`) even for a module already loaded.
      const line = source.slice(0, imp.ss).split('\n').length;
      console.warn(`dss-provider-build: warning: ${relative(process.cwd(), file)}:${line}: import() at call time traps in the component (no file system): import statically`);
    }
    if (imp.n === undefined) continue; // import(expression): left to the engine
    let t;
    try {
      t = target(imp.n, file);
    } catch (e) {
      fail(e.message);
    }
    if (t === null) continue;
    node.rewrites.push({ s: imp.s, e: imp.e, target: t, quoted: imp.d > -1 });
    queue.push(t);
  }
}

function commonDir(paths) {
  const parts = paths.map((p) => dirname(p).split(sep));
  const first = parts[0];
  let n = 0;
  while (n < first.length && parts.every((p) => p[n] === first[n])) n++;
  return first.slice(0, n).join(sep) || sep;
}

const buildDir = join(dirname(out), '.dss-build');
const ownFiles = [...graph.keys()].filter((f) => !inside(sdkDir, f));
const ownRoot = commonDir(ownFiles);
const staged = (f) => (inside(sdkDir, f) ? join(buildDir, 'sdk', relative(sdkDir, f)) : join(buildDir, 'src', relative(ownRoot, f)));
const specifier = (from, to) => {
  const r = relative(dirname(from), to).split(sep).join('/');
  return r.startsWith('.') ? r : `./${r}`;
};

await rm(buildDir, { recursive: true, force: true });
for (const [file, { source, rewrites }] of graph) {
  const dest = staged(file);
  await mkdir(dirname(dest), { recursive: true });
  if (!rewrites.length) {
    await copyFile(file, dest);
    continue;
  }
  let text = '';
  let at = 0;
  for (const r of rewrites) {
    const spec = specifier(dest, staged(r.target));
    // Static imports: s..e is the specifier without quotes; dynamic ones: with them.
    text += source.slice(at, r.s) + (r.quoted ? JSON.stringify(spec) : spec);
    at = r.e;
  }
  await writeFile(dest, text + source.slice(at));
}

// The entry: the counterpart of Rust's `export_provider!`.
const entry = join(buildDir, 'component.js');
await writeFile(entry, `// Generated by dss-provider-sdk's build.js: do not edit.
import * as witHost from 'dss:provider/host@${INTERFACE_VERSION}';
import { exportProvider } from '${specifier(entry, staged(join(sdkDir, 'index.js')))}';
import * as module from '${specifier(entry, staged(input))}';
if (!module.default || typeof module.default.listStreams !== 'function') {
  throw new Error(${JSON.stringify(`${relative(process.cwd(), input)}: the default export must be defineProvider({ ... })`)});
}
export const provider = exportProvider(module.default, witHost);
`);

// ------------------------------------------------------------------ componentize

const disableFeatures = wasi ? ['http', 'fetch-event'] : ALL_FEATURES;
const started = Date.now();
const cwd = process.cwd();
// ComponentizeJS maps the working directory to `/` while it runs the module (to snapshot it):
// everything the entry reaches is under the build directory.
process.chdir(buildDir);
let component;
try {
  ({ component } = await componentize({
    sourcePath: entry,
    witPath: witDir,
    worldName: 'dss-provider',
    disableFeatures,
  }));
} catch (e) {
  process.chdir(cwd);
  fail(`ComponentizeJS failed (staged sources kept in ${relative(cwd, buildDir)}):\n${e.message ?? e}`);
}
process.chdir(cwd);
const seconds = ((Date.now() - started) / 1000).toFixed(1);

// ------------------------------------------------------------------ check the world

let imports = null;
try {
  const { componentWit } = await import(pathToFileURL(cjsRequire.resolve('@bytecodealliance/jco')));
  const wit = await componentWit(component);
  imports = [...wit.matchAll(/^\s*import ([^;]+);/gm)].map((m) => m[1].trim());
  const exports = [...wit.matchAll(/^\s*export ([^;]+);/gm)].map((m) => m[1].trim());
  // `types` holds only types (no functions): the host imports nothing else than `host`.
  const allowed = [`dss:provider/host@${INTERFACE_VERSION}`, `dss:provider/types@${INTERFACE_VERSION}`];
  const wantExport = `dss:provider/provider@${INTERFACE_VERSION}`;
  const stray = imports.filter((i) => !allowed.includes(i) && !(wasi && i.startsWith('wasi:') && !i.startsWith('wasi:http')));
  if (stray.length || !exports.includes(wantExport)) {
    fail(`the component does not have the expected world: imports ${imports.join(', ') || 'nothing'}; exports ${exports.join(', ')}`);
  }
} catch (e) {
  if (e && e.code === 'ERR_MODULE_NOT_FOUND') console.warn('dss-provider-build: jco not found: the component\'s imports were not checked');
  else throw e;
}

const tmp = join(dirname(out), `.${basename(out)}.tmp`);
await writeFile(tmp, component);
await rename(tmp, out); // atomic, like a deploy
if (!keep) await rm(buildDir, { recursive: true, force: true });
const mib = (component.length / 1048576).toFixed(1);
console.log(`built ${relative(cwd, out) || out}: ${component.length} bytes (${mib} MiB) in ${seconds} s with ComponentizeJS ${cjsVersion}`);
console.log(`  imports ${imports ? imports.join(', ') : '(not checked)'}; exports dss:provider/provider@${INTERFACE_VERSION}; WASI features disabled: ${disableFeatures.join(' ')}`);

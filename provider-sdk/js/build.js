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
// - The build is reproducible: the same sources give the same bytes (the host's compile cache is keyed
//   by the component's SHA-256). ComponentizeJS 0.23.0 is not on its own: the snapshot (wizer)
//   reads the real entropy and clocks, and the metadata of the staged files; its work directory has a
//   random name, which the engine keeps; the clock stub it writes with `clocks` disabled holds the
//   time of the build. This script pins each (see `snapshot` and the componentize section).
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, realpathSync, writeFileSync } from 'node:fs';
import { chmod, copyFile, mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { basename, dirname, extname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { INTERFACE_VERSION } from './index.js';

// `build.js --snapshot EPOCH_MS WIZER-ARGS…`: ComponentizeJS runs this as its wizer (see `snapshot`).
if (process.argv[2] === '--snapshot') {
  await snapshot(Number(process.argv[3]), process.argv.slice(4));
  process.exit(0);
}

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
// The time of the build as far as the component can tell (the clock stub, the snapshot's clock):
// SOURCE_DATE_EPOCH (reproducible-builds.org), else a constant, not the time of day.
const epochMs = process.env.SOURCE_DATE_EPOCH ? Number(process.env.SOURCE_DATE_EPOCH) * 1000 : Date.UTC(2025, 0, 1);
if (!Number.isSafeInteger(epochMs) || epochMs < 0) fail(`SOURCE_DATE_EPOCH=${process.env.SOURCE_DATE_EPOCH}: not a number of seconds`);
const started = Date.now();
const cwd = process.cwd();
// ComponentizeJS maps the working directory to `/` while it runs the module (to snapshot it):
// everything the entry reaches is under the build directory.
process.chdir(buildDir);
// ComponentizeJS runs its wizer with an environment of its own (no PATH): a script naming this
// node and this file. On Windows, the stock wizer (the build is then not reproducible).
const wizerBin = join(buildDir, 'wizer.sh');
const sh = (arg) => `'${arg.replaceAll("'", "'\\''")}'`;
await writeFile(wizerBin, `#!/bin/sh\nexec ${sh(process.execPath)} --no-warnings ${sh(fileURLToPath(import.meta.url))} --snapshot ${epochMs} "$@"\n`);
await chmod(wizerBin, 0o755);
// Its work directory is `${os.tmpdir()}/${12 hex digits from Math.random()}`, and the engine keeps
// the name (`--initializer-script-path`) in the snapshot: pin both while it picks them, which it does
// before its first await. In the build directory: removed with it, not shared with another build.
const saved = { tmpdir: process.env.TMPDIR, random: Math.random, now: Date.now };
process.env.TMPDIR = join(buildDir, 'tmp');
await mkdir(process.env.TMPDIR);
Math.random = () => 0.5;
// With `clocks` disabled its splicer stubs the clock with the time it reads (Rust's SystemTime::now(),
// preview2-shim's wall clock, Date.now()) after the snapshot: pinned for the whole call.
Date.now = () => epochMs;
let component;
try {
  const pending = componentize({
    sourcePath: entry,
    witPath: witDir,
    worldName: 'dss-provider',
    disableFeatures,
    wizerBin: process.platform === 'win32' ? undefined : wizerBin,
  });
  Math.random = saved.random;
  if (saved.tmpdir === undefined) delete process.env.TMPDIR;
  else process.env.TMPDIR = saved.tmpdir;
  ({ component } = await pending);
} catch (e) {
  process.chdir(cwd);
  fail(`ComponentizeJS failed (staged sources kept in ${relative(cwd, buildDir)}):\n${e.message ?? e}`);
} finally {
  Math.random = saved.random;
  Date.now = saved.now;
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

// ------------------------------------------------------------------ the snapshot

/**
 * ComponentizeJS's wizer step, reproducible: the stock wizer (10.0.0, src/lib.rs `wasi_context`)
 * gives the initializer WASI with the host's entropy and clocks and no way to choose them, and
 * SpiderMonkey keeps what it reads (hash-code scramblers, Math.random's state, timestamps: a few
 * hundred bytes, and the layouts they decide, differ from one snapshot to the next). This is the same
 * pre-initialization (wizer's instrument.rs, snapshot.rs, rewrite.rs) on Node's WASI, for the options
 * ComponentizeJS 0.23.0 passes, except that the initializer's entropy is a fixed stream, its clocks
 * read `epochMs` (the monotonic one advancing a microsecond a reading) and the files it stats have
 * stable inodes and times. Without `random`, the component's entropy at call time is a fixed PRNG
 * anyway (ComponentizeJS's stub); with `--wasi` it still is the host's.
 */
async function snapshot(epochMs, argv) {
  const { WASI } = await import('node:wasi'); // here only: it is experimental (a warning)
  const TRAPPED = (f) => `Error: the \`${f}\` function trapped\n\nCaused by:\n    `; // what ComponentizeJS parses
  let initFunc = 'wizer.initialize', input, output, allowWasi = false, inheritEnv = false;
  const dirs = [], mapdirs = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--allow-wasi') allowWasi = true;
    else if (a === '--init-func') initFunc = argv[++i];
    else if (a.startsWith('--dir=')) dirs.push([a.slice(6), a.slice(6)]);
    else if (a.startsWith('--mapdir=')) mapdirs.push(a.slice(9).split('::'));
    else if (a.startsWith('--inherit-env=')) inheritEnv = a === '--inherit-env=true';
    else if (a === '--wasm-bulk-memory=true') continue; // V8 has it
    else if (a.startsWith('-o=')) output = a.slice(3);
    else if (a.startsWith('-')) fail(`snapshot: unknown wizer option ${a} (written for ComponentizeJS 0.23.0)`);
    else input = a;
  }
  const wasm = readFileSync(input);

  // The module's sections, and what the snapshot rewrites: imports (to number the defined globals
  // and memories), memories, globals, exports.
  let pos;
  const u8 = () => wasm[pos++];
  const u32 = () => { let r = 0, s = 0, x; do { x = wasm[pos++]; r += (x & 0x7f) * 2 ** s; s += 7; } while (x & 0x80); return r; };
  const name = () => { const n = u32(); pos += n; return wasm.toString('utf8', pos - n, pos); };
  const limits = () => { const flags = u8(); const min = u32(); return { flags, min, max: flags & 1 ? u32() : undefined }; };
  const constExpr = () => {
    for (let op = u8(); op !== 0x0b; op = u8()) {
      if ([0x41, 0x42, 0x23, 0xd0, 0xd2].includes(op)) u32(); // i32/i64.const (LEB), global.get, ref.null, ref.func
      else if (op === 0x43 || op === 0x44) pos += op === 0x43 ? 4 : 8;
      else if (op === 0xfd) { u32(); pos += 16; } // v128.const
      else if (![0x6a, 0x6b, 0x6c, 0x7c, 0x7d, 0x7e].includes(op)) fail(`snapshot: constant expression opcode ${op}`);
    }
  };
  const sections = [];
  for (pos = 8; pos < wasm.length;) {
    const id = u8(), size = u32();
    sections.push({ id, start: pos, body: wasm.subarray(pos, pos + size) });
    pos += size;
  }
  const at = (id) => { const s = sections.find((x) => x.id === id); pos = s?.start; return s ? u32() : 0; };
  let importedGlobals = 0, importedMemories = 0;
  for (let n = at(2); n--;) {
    name(); name();
    const kind = u8();
    if (kind === 0 || kind === 4) { if (kind === 4) u8(); u32(); } // function, tag
    else if (kind === 1) { u8(); limits(); } // table
    else if (kind === 2) { limits(); importedMemories++; }
    else { u8(); u8(); importedGlobals++; }
  }
  const memories = Array.from({ length: at(5) }, limits);
  const globals = Array.from({ length: at(6) }, () => { const g = { type: u8(), mutable: u8() }; constExpr(); return g; });
  const exports = Array.from({ length: at(7) }, () => ({ name: name(), kind: u8(), index: u32() }));

  const uleb = (n) => { const b = []; do { b.push((n % 128) | (n >= 128 ? 0x80 : 0)); n = Math.floor(n / 128); } while (n); return Buffer.from(b); };
  const sleb = (v) => { v = BigInt(v); const b = []; for (;;) { const x = Number(v & 0x7fn); v >>= 7n; if ((v === 0n && !(x & 0x40)) || (v === -1n && x & 0x40)) return Buffer.from([...b, x]); b.push(x | 0x80); } };
  const bytes = (...parts) => Buffer.concat(parts.map((p) => (typeof p === 'number' ? Buffer.from([p]) : p)));
  const vec = (items) => bytes(uleb(items.length), ...items);
  const section = (id, body) => bytes(id, uleb(body.length), body);
  const exportSection = (list) => section(7, vec(list.map((e) => bytes(uleb(Buffer.byteLength(e.name)), Buffer.from(e.name), e.kind, uleb(e.index)))));

  // Instrument: export every defined global and memory, to read them after the initializer.
  const instrumented = bytes(wasm.subarray(0, 8), ...sections.map((s) => (s.id !== 7 ? section(s.id, s.body) : exportSection([
    ...exports,
    ...globals.map((_, i) => ({ name: `__wizer_global_${i}`, kind: 3, index: importedGlobals + i })),
    ...memories.map((_, i) => ({ name: `__wizer_memory_${i}`, kind: 2, index: importedMemories + i })),
  ]))));

  // Run the initializer; WASI as wizer's (stdio and, with --inherit-env, the environment; the
  // preopens, --dir first), but for entropy, clocks and file metadata.
  const module = new WebAssembly.Module(instrumented);
  const wasi = new WASI({
    version: 'preview1',
    env: inheritEnv ? process.env : {},
    preopens: Object.fromEntries([...dirs, ...mapdirs]),
  });
  let memory, pool = Buffer.alloc(0), blocks = 0, monotonic = 0n;
  const epochNs = BigInt(epochMs) * 1000000n;
  const view = () => new DataView(memory.buffer);
  const preview1 = {
    ...wasi.wasiImport,
    random_get(ptr, len) {
      for (let p = ptr; p < ptr + len;) {
        if (!pool.length) pool = createHash('sha256').update(`dss-provider-build snapshot entropy ${blocks++}`).digest();
        const n = Math.min(pool.length, ptr + len - p);
        new Uint8Array(memory.buffer, p, n).set(pool.subarray(0, n));
        pool = pool.subarray(n);
        p += n;
      }
      return 0;
    },
    clock_time_get(id, _precision, ptr) {
      // Realtime is frozen; the others advance (a frozen monotonic clock could stall a loop).
      view().setBigUint64(ptr, id === 0 ? epochNs : (monotonic += 1000n), true);
      return 0;
    },
    path_filestat_get(fd, flags, path, len, buf) {
      const r = wasi.wasiImport.path_filestat_get(fd, flags, path, len, buf);
      if (r === 0) {
        // The staged files are new every build: an inode from the path, times from the epoch.
        const ino = createHash('sha256').update(`${fd}:${Buffer.from(memory.buffer, path, len)}`).digest().readBigUInt64LE(0);
        const v = view();
        v.setBigUint64(buf, 1n, true); // device
        v.setBigUint64(buf + 8, ino, true);
        for (const o of [40, 48, 56]) v.setBigUint64(buf + o, epochNs, true); // atime, mtime, ctime
      }
      return r;
    },
    proc_exit(code) {
      console.error(`${TRAPPED(initFunc)}Exited with i32 exit status ${code}`);
      process.exit(1);
    },
  };
  const imports = {};
  for (const { module: m, name: n, kind } of WebAssembly.Module.imports(module)) {
    imports[m] ??= {};
    if (allowWasi && m === 'wasi_snapshot_preview1' && preview1[n]) imports[m][n] = preview1[n];
    else if (kind === 'function') imports[m][n] = () => { throw new Error(`the initializer called the import ${m}::${n}`); };
    else fail(`snapshot: cannot provide the import ${m}::${n} (${kind})`);
  }
  const instance = new WebAssembly.Instance(module, imports);
  memory = instance.exports.__wizer_memory_0;
  const hasInitialize = typeof instance.exports._initialize === 'function';
  try {
    wasi.initialize(instance); // gives WASI the memory, and runs `_initialize` (a reactor's) as wizer does
    if (initFunc !== '_initialize' || !hasInitialize) instance.exports[initFunc]();
  } catch (e) {
    console.error(`${TRAPPED(initFunc)}${e?.stack ?? e}`);
    process.exit(1);
  }

  // The state: the globals, each memory's size and its non-zero bytes as data segments, merged
  // across gaps of 4 bytes at most, then across the smallest gaps down to 10,000 (wizer's rules).
  const values = globals.map((_, i) => instance.exports[`__wizer_global_${i}`].value);
  const datas = memories.map((_, i) => new Uint8Array(instance.exports[`__wizer_memory_${i}`].buffer));
  const PAGE = 65536, MAX_SEGMENTS = 10000;
  let segments = [];
  datas.forEach((data, memoryIndex) => {
    for (let page = 0; page * PAGE < data.length; page++) {
      const end = (page + 1) * PAGE;
      for (let s = page * PAGE; ;) {
        while (s < end && data[s] === 0) s++;
        if (s === end) break;
        let e = s;
        while (e < end && data[e] !== 0) e++;
        const last = segments[segments.length - 1];
        if (last?.memoryIndex === memoryIndex && s - (last.offset + last.len) <= 4) last.len = e - last.offset;
        else segments.push({ memoryIndex, offset: s, len: e - s });
        s = e;
      }
    }
  });
  if (segments.length >= MAX_SEGMENTS) {
    const gaps = [];
    for (let i = 0; i + 1 < segments.length; i++) {
      if (segments[i].memoryIndex === segments[i + 1].memoryIndex) gaps.push({ i, gap: segments[i + 1].offset - segments[i].offset - segments[i].len });
    }
    gaps.sort((a, b) => a.gap - b.gap || a.i - b.i);
    const joined = new Set(gaps.slice(0, segments.length - MAX_SEGMENTS).map((g) => g.i));
    segments = segments.reduce((acc, seg, i) => {
      if (joined.has(i - 1)) { const a = acc[acc.length - 1]; a.len = seg.offset + seg.len - a.offset; } else acc.push({ ...seg });
      return acc;
    }, []);
  }

  // Rewrite the original module with that state: memories at their size, globals at their values,
  // no init function (nor `_initialize`) export, no start, the segments as its data.
  const constOf = (type, v) => {
    if (type === 0x7f || type === 0x7e) return bytes(type === 0x7f ? 0x41 : 0x42, sleb(v), 0x0b);
    const b = Buffer.alloc(type === 0x7d ? 4 : 8);
    if (type === 0x7d) b.writeFloatLE(v); else if (type === 0x7c) b.writeDoubleLE(v); else fail(`snapshot: a global of type ${type}`);
    return bytes(type === 0x7d ? 0x43 : 0x44, b, 0x0b);
  };
  const data = section(11, vec(segments.map((s) => bytes(
    s.memoryIndex ? bytes(2, uleb(s.memoryIndex)) : bytes(0), 0x41, sleb(s.offset | 0), 0x0b,
    uleb(s.len), datas[s.memoryIndex].subarray(s.offset, s.offset + s.len),
  ))));
  const out = [wasm.subarray(0, 8)];
  let dataDone = !segments.length;
  const addData = () => { if (!dataDone) out.push(data); dataDone = true; };
  for (const s of sections) {
    if (s.id === 0) {
      pos = s.start;
      if (name() === 'name') addData(); // some tools want the name section last
      out.push(section(0, s.body));
    } else if (s.id === 5) {
      out.push(section(5, vec(memories.map((m, i) => bytes(m.flags, uleb(datas[i].length / PAGE), m.max === undefined ? Buffer.alloc(0) : uleb(m.max))))));
    } else if (s.id === 6) {
      out.push(section(6, vec(globals.map((g, i) => bytes(g.type, g.mutable, constOf(g.type, values[i]))))));
    } else if (s.id === 7) {
      out.push(exportSection(exports.filter((e) => e.name !== initFunc && !(hasInitialize && e.name === '_initialize'))));
    } else if (s.id === 12) {
      out.push(section(12, uleb(segments.length)));
    } else if (s.id === 11) {
      addData();
    } else if (s.id !== 8) {
      out.push(section(s.id, s.body));
    }
  }
  addData();
  writeFileSync(output, Buffer.concat(out));
}

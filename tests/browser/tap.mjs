// What the browser tests share: their arguments (node's own parseArgs),
// one line per check in TAP's words (`ok N - name (detail)`, `FAIL N -
// name: why`, `# note`), a deadline for a run that hangs, and the exit
// status. The Rust tests (tests/tests/page*.rs) run the scripts and show
// these lines when a check fails.

import { parseArgs } from 'node:util';

/**
 * The command line as `options` (node:util parseArgs options) describe
 * it; `required` names must be given. A mistake prints `usage` and exits 2.
 */
export function args(name, usage, options, required) {
  let values;
  try {
    ({ values } = parseArgs({ args: process.argv.slice(2), options, strict: true }));
  } catch (e) {
    die(e.message);
  }
  const missing = required.filter((k) => values[k] === undefined);
  if (missing.length) die(`${missing.map((k) => `--${k}`).join(', ')} required`);
  return values;
  function die(err) {
    console.error(`${name}: ${err}`);
    console.error(`usage: ${usage}`);
    process.exit(2);
  }
}

let failures = 0;
let n = 0;

export function ok(name, detail = '') {
  n++;
  console.log(`ok ${n} - ${name}${detail ? ` (${detail})` : ''}`);
}

export function fail(name, detail) {
  n++;
  failures++;
  console.log(`FAIL ${n} - ${name}: ${detail}`);
}

export function note(text) {
  console.log(`# ${text}`);
}

/** Runs one check; an exception fails it (and the run goes on). */
export async function check(name, fn) {
  const t0 = Date.now();
  try {
    const detail = await fn();
    ok(name, [detail, `${((Date.now() - t0) / 1000).toFixed(1)} s`].filter(Boolean).join(', '));
    return true;
  } catch (e) {
    fail(name, e?.message?.split('\n')[0] || String(e));
    return false;
  }
}

export function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}

/** A run that hangs is a failure too. */
export function deadline(seconds) {
  setTimeout(() => {
    console.log(`FAIL - the test did not finish within ${seconds} s`);
    process.exit(1);
  }, seconds * 1000).unref();
}

/** Says how the checks went and exits with it. */
export function finish() {
  console.log(failures ? `# ${failures} of ${n} checks failed` : `# all ${n} checks passed`);
  process.exit(failures ? 1 : 0);
}

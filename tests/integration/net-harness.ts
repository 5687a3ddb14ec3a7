// What the real-kernel tests share: a shell runner that fails with the command's own output,
// the same inside a namespace, the request shorthand for a daemon's switch vale0, and the rule
// for missing prerequisites — skip with the reason, or, under WASMAP_REQUIRE_NET=1 (CI), a test
// that fails with it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { ctlRequest } from '../../src/ctl/client.js';

export const required = process.env.WASMAP_REQUIRE_NET === '1';

/** The `skip` option for a file's tests: false when `why` is '' (all there), else the reason —
 *  and under WASMAP_REQUIRE_NET=1 a test named after `what` that fails with it instead. */
export function prerequisites(what: string, why: string): string | false {
  if (why && required) test(`${what} prerequisites`, () => assert.fail(`WASMAP_REQUIRE_NET=1 but ${why}`));
  return why && !required ? why : false;
}

/** Run a shell command; with `ok` a non-zero exit throws with its output. Returns stdout. */
export function sh(cmd: string, ok = true): string {
  const r = spawnSync('sh', ['-c', cmd], { encoding: 'utf8', timeout: 60000 });
  if (ok && r.status !== 0) throw new Error(`'${cmd}' failed (${r.status}): ${r.stderr || r.stdout}`);
  return r.stdout;
}
export const inNs = (ns: string, cmd: string, ok = true): string => sh(`ip netns exec ${ns} ${cmd}`, ok);

/** Requests to switch vale0 of the daemon at `sock`. */
/** Delete every network namespace and link whose name starts with `prefix` (a test's per-run
 *  prefix): cleanup that also works after a failure half-way through set-up. */
export function removeByPrefix(prefix: string): void {
  for (const n of sh(`ip netns list 2>/dev/null | awk '{print $1}' | grep '^${prefix}' || true`, false).split('\n').filter(Boolean)) sh(`ip netns del ${n} 2>/dev/null`, false);
  for (const l of sh(`ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 | grep '^${prefix}' || true`, false).split('\n').filter(Boolean)) sh(`ip link del ${l} 2>/dev/null`, false);
}
export const ctlOf = (sock: string) => (verb: string, args: Record<string, unknown> = {}): Promise<unknown> => ctlRequest(sock, verb, { switch: 'vale0', ...args });

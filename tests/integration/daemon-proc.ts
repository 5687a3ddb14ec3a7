// A switch daemon as a child process (`wasmap switch …`), for the integration tests that drive
// it through its control socket: resolves once it says it listens, rejects with its output if
// it exits or stays silent for 15 s.
import { spawn, ChildProcess } from 'node:child_process';
import assert from 'node:assert/strict';
import { findBuildFile } from '../../src/paths.js';

/** netns: run it inside that network namespace (its TAP ports are created there); env: extra
 *  environment (e.g. WASMAP_CTL_LIMITS); cwd: its working directory; the daemon's output so far is in `output()`. */
export async function startDaemonProcess(args: string[], o: { netns?: string; env?: Record<string, string>; cwd?: string } = {}): Promise<ChildProcess & { output: () => string }> {
  const cli = findBuildFile('cli.mjs');
  assert.ok(cli, 'build/cli.mjs exists (npm run build)');
  const argv = [process.execPath, cli, 'switch', ...args];
  if (o.netns) argv.unshift('ip', 'netns', 'exec', o.netns);
  const daemon = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...o.env }, cwd: o.cwd }) as ChildProcess & { output: () => string };
  let out = '';
  daemon.output = () => out;
  daemon.stdout!.on('data', (d) => { out += d; });
  daemon.stderr!.on('data', (d) => { out += d; });
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`daemon did not start: ${out}`)), 15000);
    const onExit = (c: number | null) => { clearTimeout(t); reject(new Error(`daemon exited ${c}: ${out}`)); };
    daemon.stdout!.on('data', () => { if (out.includes('listening')) { clearTimeout(t); daemon.off('exit', onExit); resolve(); } });
    daemon.once('exit', onExit);
  });
  return daemon;
}

/** Resolves with the exit code (or the signal's name) once the process has exited. */
export function exited(p: ChildProcess): Promise<number | string> {
  if (p.exitCode !== null) return Promise.resolve(p.exitCode);
  if (p.signalCode !== null) return Promise.resolve(p.signalCode);
  return new Promise((r) => p.once('exit', (code, sig) => r(code ?? sig ?? -1)));
}

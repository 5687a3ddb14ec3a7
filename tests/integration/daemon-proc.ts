// A switch daemon as a child process (`wasmap switch …`), for the integration tests that drive
// it through its control socket: resolves once it says it listens, rejects with its output if
// it exits or stays silent for 15 s.
import { spawn, ChildProcess } from 'node:child_process';
import assert from 'node:assert/strict';
import { findBuildFile } from '../../src/paths.js';

/** netns: run it inside that network namespace (its TAP ports are created there). */
export async function startDaemonProcess(args: string[], o: { netns?: string } = {}): Promise<ChildProcess> {
  const cli = findBuildFile('cli.mjs');
  assert.ok(cli, 'build/cli.mjs exists (npm run build)');
  const argv = [process.execPath, cli, 'switch', ...args];
  if (o.netns) argv.unshift('ip', 'netns', 'exec', o.netns);
  const daemon = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  await new Promise<void>((resolve, reject) => {
    let out = '';
    const t = setTimeout(() => reject(new Error(`daemon did not start: ${out}`)), 15000);
    daemon.stdout!.on('data', (d) => { out += d; if (out.includes('listening')) { clearTimeout(t); resolve(); } });
    daemon.stderr!.on('data', (d) => { out += d; });
    daemon.once('exit', (c) => { clearTimeout(t); reject(new Error(`daemon exited ${c}: ${out}`)); });
  });
  return daemon;
}

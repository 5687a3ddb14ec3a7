// QEMU guests for the VM tests and `wasmap bench --vm`: Debian's kernel and the small
// initramfs that src/tools/vm-image.mjs builds (cached in build/vm/), one virtio-net NIC
// (modern, VERSION_1), and a command channel on the serial console: the harness writes
// "SEQ COMMAND", the guest runs it with sh -c and answers "__WASMAP_DONE__ SEQ RC". The whole
// console is kept, so a failing test can show its tail.
//
//   const g = await startGuest({ name: 'g1', ip: '10.77.0.11/24', mac: '52:54:00:77:00:11',
//     netdevArgs: ['-netdev', 'tap,id=n0,ifname=t0,script=no,downscript=no,vhost=off'], netns: 'ns1' });
//   const { rc, out } = await g.run('ping -c 3 10.77.0.12', 30000);
//   await g.stop();
//
// The network backend is the caller's (netdevArgs; its id must be `netdev`, n0 by default);
// the device defaults to `-device virtio-net-pci,netdev=n0,mac=MAC,disable-legacy=on` and can
// be replaced (deviceArgs). vhost-user needs the guest memory shared: memBackend 'memfd' adds
// `-object memory-backend-memfd,id=mem,size=<memMB>M,share=on -machine memory-backend=mem`.
// Without /dev/kvm the guests run under TCG (said once, on stdout unless GuestOptions.log says
// where): boot to the ready marker then took 7–10 s for one guest and 12–18 s for two at once
// on a 2-core machine (Debian 6.1 kernel).
import { spawn, spawnSync, ChildProcess } from 'node:child_process';
import { existsSync, accessSync, constants } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { WasmapError } from '../errors.js';

export const QEMU = process.env.WASMAP_QEMU || 'qemu-system-x86_64';
export const READY = '__WASMAP_READY__';
export const DONE = '__WASMAP_DONE__';

/** /dev/kvm exists and we may open it. */
export function kvmAvailable(): boolean {
  try { accessSync('/dev/kvm', constants.R_OK | constants.W_OK); return true; } catch { return false; }
}

/** qemu-system-x86_64 runs. */
export function qemuAvailable(): boolean {
  const r = spawnSync(QEMU, ['--version'], { encoding: 'utf8' });
  return r.status === 0 && /QEMU emulator/.test(r.stdout);
}

/** /dev/vhost-net exists (a tap netdev may then use vhost=on). */
export function vhostNetAvailable(): boolean {
  try { accessSync('/dev/vhost-net', constants.R_OK | constants.W_OK); return true; } catch { return false; }
}

export const accel = (): 'kvm' | 'tcg' => (kvmAvailable() ? 'kvm' : 'tcg');
/** Boot deadline: generous, TCG boot measured 7–18 s on 2 cores (see above); KVM boots in ~1–2 s. */
export const defaultBootTimeoutMs = (): number => (kvmAvailable() ? 30_000 : 120_000);

let tcgSaid = false;
/** Once per process; `log` lets a caller whose stdout is JSON send it elsewhere. */
function sayAccel(log: (line: string) => void = console.log): void {
  if (tcgSaid || kvmAvailable()) return;
  tcgSaid = true;
  log('# no /dev/kvm: guests run under TCG emulation (slower)');
}

export interface ImagePaths { kernel: string; initrd: string; info: Record<string, unknown>; built: boolean }

/**
 * The guest image (src/tools/vm-image.mjs), built on first use. Imported at run time from the
 * source tree, not bundled: the tool finds build/vm/ relative to itself. This module runs from
 * src/vm/ (sources), build/cli.mjs (the CLI bundle) or build/tests/integration/ (test bundles),
 * so walk up from here — and from the working directory — until src/tools/vm-image.mjs appears.
 */
export async function ensureImage(opts: { log?: (line: string) => void; force?: boolean } = {}): Promise<ImagePaths> {
  const here = dirname(fileURLToPath(import.meta.url));
  for (const start of [here, process.cwd()]) {
    let dir = start;
    for (let i = 0; i < 6; i++) {
      const tool = join(dir, 'src/tools/vm-image.mjs');
      if (existsSync(tool)) {
        const mod = (await import(pathToFileURL(tool).href)) as { ensureImage(o: typeof opts): Promise<ImagePaths> };
        return mod.ensureImage(opts);
      }
      dir = dirname(dir);
    }
  }
  throw new WasmapError('ENOIMAGE', `src/tools/vm-image.mjs not found above ${here} or ${process.cwd()}`);
}

export interface GuestOptions {
  name: string;
  /** the backend, e.g. ['-netdev', 'tap,id=n0,ifname=t0,script=no,downscript=no,vhost=off'] */
  netdevArgs: string[];
  /** the guest's address with prefix length, e.g. '10.77.0.11/24' (configured on eth0 at boot) */
  ip: string;
  mac: string;
  /** id of the netdev the default device uses (n0) */
  netdev?: string;
  /** replaces the default ['-device', 'virtio-net-pci,netdev=n0,mac=MAC,disable-legacy=on'] */
  deviceArgs?: string[];
  /** anything else for QEMU, appended last (e.g. more -chardev/-object) */
  extraArgs?: string[];
  memMB?: number;
  /** 'ram' (QEMU's default) or 'memfd' (shared memfd, what vhost-user needs) */
  memBackend?: 'ram' | 'memfd';
  /** run QEMU inside this network namespace (ip netns exec) */
  netns?: string;
  /** more kernel command line */
  append?: string;
  /** keep IPv6 on in the guest (off by default: no router solicitations or MLD on the wire) */
  ipv6?: boolean;
  bootTimeoutMs?: number;
  /** image paths; default: ensureImage() */
  image?: { kernel: string; initrd: string };
  /** where the one-time "no /dev/kvm" notice goes (default: stdout, a TAP comment in tests) */
  log?: (line: string) => void;
}

export interface RunResult { rc: number; out: string }

export interface Guest {
  readonly name: string;
  readonly ip: string;
  readonly mac: string;
  readonly pid: number;
  readonly accel: 'kvm' | 'tcg';
  /** ms from spawn to the ready marker */
  readonly bootMs: number;
  /** the QEMU command line */
  readonly argv: string[];
  /** resolves with the exit code (or signal name) when QEMU is gone */
  readonly exited: Promise<number | string>;
  /** everything the guest and QEMU wrote (console, QEMU's stderr), \r removed */
  console(): string;
  /** the last `lines` lines of console(), for error messages */
  tail(lines?: number): string;
  /** runs a shell command in the guest; output is stdout and stderr together */
  run(cmd: string, timeoutMs?: number): Promise<RunResult>;
  /** run(), but throws (with the output and the console tail) unless rc is 0; returns the output */
  check(cmd: string, timeoutMs?: number): Promise<string>;
  /** poweroff in the guest; SIGKILL if QEMU is still there after timeoutMs */
  stop(timeoutMs?: number): Promise<void>;
  /** SIGKILL */
  kill(): void;
}

const live = new Set<ChildProcess>();
let exitHook = false;
function track(p: ChildProcess): void {
  live.add(p);
  p.once('exit', () => live.delete(p));
  if (!exitHook) {
    exitHook = true;
    // a test process that dies must not leave emulators running
    process.once('exit', () => { for (const c of live) { try { c.kill('SIGKILL'); } catch { /* gone */ } } });
  }
}

/** Starts a guest and resolves once it printed the ready marker (eth0 configured, iperf3 -s running). */
export async function startGuest(o: GuestOptions): Promise<Guest> {
  if (!qemuAvailable()) throw new WasmapError('ENOQEMU', `${QEMU} not found (apt-get install qemu-system-x86)`);
  const image = o.image ?? (await ensureImage());
  sayAccel(o.log);
  const kvm = kvmAvailable();
  const memMB = o.memMB ?? 256;
  const netdev = o.netdev ?? 'n0';
  const cmdline = ['console=ttyS0', 'panic=-1', 'loglevel=4', `wasmap.ip=${o.ip}`, `wasmap.name=${o.name}`];
  if (!o.ipv6) cmdline.push('ipv6.disable=1');
  if (o.append) cmdline.push(o.append);
  const machine = ['pc'];
  const mem: string[] = ['-m', `${memMB}M`];
  if (o.memBackend === 'memfd') {
    mem.push('-object', `memory-backend-memfd,id=mem,size=${memMB}M,share=on`);
    machine.push('memory-backend=mem');
  }
  // QEMU 7.2 under TCG segfaults in msix_set_vector_notifiers when a vhost-user device starts
  // (there are no KVM irqfds to route MSI-X through): without MSI-X vectors the device
  // interrupts through INTx instead, which works
  const vhostUser = o.netdevArgs.some((a) => a.startsWith('vhost-user'));
  const args = [
    '-name', o.name, '-nodefaults', '-no-user-config', '-display', 'none', '-serial', 'stdio',
    '-machine', machine.join(','), '-accel', kvm ? 'kvm' : 'tcg', '-cpu', kvm ? 'host' : 'max', '-smp', '1', ...mem,
    '-no-reboot', '-kernel', image.kernel, '-initrd', image.initrd, '-append', cmdline.join(' '),
    ...o.netdevArgs,
    ...(o.deviceArgs ?? ['-device', `virtio-net-pci,netdev=${netdev},mac=${o.mac},disable-legacy=on${vhostUser && !kvm ? ',vectors=0' : ''}`]),
    ...(o.extraArgs ?? []),
  ];
  const argv = o.netns ? ['ip', 'netns', 'exec', o.netns, QEMU, ...args] : [QEMU, ...args];
  const t0 = Date.now();
  const proc = spawn(argv[0], argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
  track(proc);
  let log = '';
  let waiters: (() => void)[] = [];
  const poke = (): void => { const w = waiters; waiters = []; for (const f of w) f(); };
  const onData = (d: Buffer): void => { log += d.toString('latin1').replace(/\r/g, ''); poke(); };
  proc.stdout!.on('data', onData);
  proc.stderr!.on('data', onData);
  proc.stdin!.on('error', () => { /* QEMU gone: reported through `exited` */ });
  let exitInfo: number | string | null = null;
  const exited = new Promise<number | string>((resolve) => {
    proc.once('exit', (code, sig) => { exitInfo = code ?? sig ?? 'unknown'; poke(); resolve(exitInfo); });
    proc.once('error', (e) => { log += `\n[spawn error: ${e.message}]\n`; exitInfo = 'spawn-error'; poke(); resolve(exitInfo); });
  });
  const tail = (lines = 40): string => log.split('\n').slice(-lines).join('\n');
  const fail = (what: string): Error => new WasmapError('EGUEST', `guest ${o.name}: ${what}\n--- console tail (${o.name}) ---\n${tail()}\n--- end ---`);

  /** Waits until `test` finds something in the log from `from` on; rejects on timeout or exit. */
  const waitFor = <T>(from: number, test: (s: string) => T | null, timeoutMs: number, what: string): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => { done = true; reject(fail(`${what}: no answer after ${timeoutMs} ms`)); }, timeoutMs);
      let done = false;
      const check = (): void => {
        if (done) return;
        const hit = test(log.slice(from));
        if (hit !== null) { done = true; clearTimeout(timer); resolve(hit); return; }
        if (exitInfo !== null) { done = true; clearTimeout(timer); reject(fail(`${what}: QEMU exited (${exitInfo})`)); return; }
        waiters.push(check);
      };
      check();
    });

  try {
    await waitFor(0, (s) => (s.includes(READY) ? true : null), o.bootTimeoutMs ?? defaultBootTimeoutMs(), `boot (${kvm ? 'KVM' : 'TCG'}) [${argv.join(' ')}]`);
  } catch (e) {
    proc.kill('SIGKILL');
    throw e;
  }
  const bootMs = Date.now() - t0;

  let seq = 0;
  let queue: Promise<unknown> = Promise.resolve();
  const run = (cmd: string, timeoutMs = 60_000): Promise<RunResult> => {
    if (/[\n\r]/.test(cmd)) return Promise.reject(new WasmapError('EINVAL', `guest ${o.name}: a command is one line: ${JSON.stringify(cmd)}`));
    const job = queue.then(async () => {
      const n = ++seq;
      const from = log.length;
      const re = new RegExp(`${DONE} ${n} (\\d+)\\n`); // output without a final newline runs into it
      proc.stdin!.write(`${n} ${cmd}\n`);
      return waitFor(from, (s) => {
        const m = re.exec(s);
        if (!m) return null;
        // (without the late marker of an earlier command that timed out)
        const out = s.slice(0, m.index).replace(new RegExp(`${DONE} \\d+ \\d+\\n`, 'g'), '');
        return { rc: Number(m[1]), out };
      }, timeoutMs, `'${cmd}'`);
    });
    queue = job.catch(() => undefined);
    return job;
  };

  const guest: Guest = {
    name: o.name, ip: o.ip.split('/')[0], mac: o.mac, pid: proc.pid ?? -1, accel: kvm ? 'kvm' : 'tcg', bootMs, argv, exited,
    console: () => log,
    tail,
    run,
    async check(cmd: string, timeoutMs?: number): Promise<string> {
      const r = await run(cmd, timeoutMs);
      if (r.rc !== 0) throw fail(`'${cmd}' exited ${r.rc}:\n${r.out}`);
      return r.out;
    },
    async stop(timeoutMs = 10_000): Promise<void> {
      if (exitInfo !== null) return;
      proc.stdin!.write(`0 sync; poweroff -f\n`);
      const t = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
      await exited;
      clearTimeout(t);
    },
    kill(): void { if (exitInfo === null) proc.kill('SIGKILL'); },
  };
  return guest;
}

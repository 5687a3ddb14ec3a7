// `wasmap switch NAME`: run a switch daemon in the foreground.
import { parseArgs } from 'node:util';
import { Daemon, checkSocketPath, CtlLimits } from '../ctl/daemon.js';
import { defaultSocket } from '../ctl/paths.js';
import { WasmapError } from '../errors.js';
import { hostMissingReason } from '../host.js';
import { resolve as resolvePath } from 'node:path';
import { pollMode } from '../runner.js';

/** I/O threads a switch runs when --io-threads is not given (docs/io-threads.md). */
export const IO_DEFAULT = 0;

export const SWITCH_HELP = `wasmap switch — run a VALE switch daemon (forwarding in a worker thread)

Usage: wasmap switch NAME [NAME2 …] [--socket PATH] [--config FILE] [--poll busy|adaptive|sleep] [--spin-us N] [--io-threads N]

NAME is the switch, e.g. vale0. The daemon listens for \`wasmap ctl\` on a unix socket
(default $XDG_RUNTIME_DIR/wasmap/NAME.sock, else /run/wasmap/NAME.sock; mode 0600).
Ctrl-C or SIGTERM stop it: ports are detached, TAP devices it created disappear.
If the forwarding thread fails (or stops coming round for 60 s) the daemon says why and exits
with status 70; pending requests are answered EWORKER. A request line is at most 48 MiB,
nested at most 32 deep; 128 control connections are served at once.

--poll says how the forwarding thread waits for frames (latency against CPU):
  busy      it never sleeps: one core is always 100 % busy; the lowest round-trip time
            (no wake-up on either side of a ping or an ack).
  adaptive  (default) after traffic it keeps polling for --spin-us microseconds (default
            50000), then sleeps in poll(2) until a port has work: replies and acks that follow
            traffic are picked up without a wake-up, and an idle switch costs ~0 % CPU.
  sleep     it sleeps as soon as a pass moves nothing (= adaptive with --spin-us 0): the
            least CPU under sparse traffic, a wake-up (tens of µs) added to every hop.
Measured RTTs and CPU per mode: docs/poll-modes.md. \`wasmap ctl stats\` shows the mode and
the forwarding thread's CPU time. I/O threads spin only in busy mode.

--io-threads N moves the kernel I/O of TAP ports (a readv/writev per frame, most of the cost)
off the forwarding thread into N I/O threads (default ${IO_DEFAULT}: all in the forwarding thread).
Each TAP port goes to the thread with the fewest ports (\`ctl attach … --io-thread K|none\`
picks); the threads meet the switch only at the rings. They pay off with cores to spare: on 2
shared cores they measured no faster than 0 (docs/io-threads.md).

--config FILE keeps the switch's topology in FILE: on start it builds again what FILE holds
(persistent interfaces, ports with their options, the forwarding function and its config;
what cannot be built, e.g. an interface gone meanwhile, is logged and left out), and every
attach, detach, set-lookup, newif and delif rewrites it. \`wasmap ctl save [FILE]\` writes the
running topology in the same format (JSON) at any time. Ports made by the CNI plugin are kept
too: their veths stay in the containers while the daemon restarts.

Then, for example:
  wasmap ctl attach vale0 tap:wm0 --vnet-hdr 12    create (or open) TAP wm0, attach it
  wasmap ctl attach vale0 af_packet:veth1          attach an existing interface
  wasmap ctl list vale0        wasmap ctl stats vale0 [--prometheus]
`;

export async function switchd(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: { socket: { type: 'string' }, config: { type: 'string' }, 'spin-us': { type: 'string', default: '50000' }, poll: { type: 'string', default: 'adaptive' }, 'io-threads': { type: 'string', default: String(IO_DEFAULT) }, help: { type: 'boolean', short: 'h' } } });
  if (values.help) { process.stdout.write(SWITCH_HELP); return 0; }
  const name = positionals[0];
  if (!name || !/^vale[A-Za-z0-9_]{0,11}$/.test(name)) throw new WasmapError('EINVAL', `give the switch name: wasmap switch valeX (e.g. vale0)${name ? `; '${name}' is not one` : ''}`);
  // more names: more switches in this daemon, one forwarding thread and memory (tunnel ports of
  // several switches then share one UDP socket, told apart by VNI: docs/tunnels.md)
  const extra = positionals.slice(1);
  for (const x of extra) if (!/^vale[A-Za-z0-9_]{0,11}$/.test(x) || x === name) throw new WasmapError('EINVAL', `'${x}' is not another switch name (valeX)`);
  const socket = values.socket ?? defaultSocket(name);
  const spinUs = Number(values['spin-us']);
  if (!Number.isInteger(spinUs) || spinUs < 0 || spinUs > 10_000_000) throw new WasmapError('EINVAL', `--spin-us must be 0..10000000, not '${values['spin-us']}'`);
  const poll = pollMode(values.poll);
  if (poll !== 'adaptive' && argv.some((a) => a === '--spin-us' || a.startsWith('--spin-us='))) throw new WasmapError('EINVAL', `--spin-us is the adaptive mode's knob; --poll ${poll} does not use it`);
  const ioThreads = Number(values['io-threads']);
  if (!Number.isInteger(ioThreads) || ioThreads < 0 || ioThreads > 64) throw new WasmapError('EINVAL', `--io-threads must be 0..64, not '${values['io-threads']}'`);
  checkSocketPath(socket);
  const missing = hostMissingReason();
  if (missing) console.error(`wasmap switch: warning: ${missing}; only virtual ports will work`);
  const log = (s: string) => console.error(`wasmap switch: ${s}`);
  let d: Daemon | null = null;
  let exiting = false;
  // never a silent death or a zombie: stop what can be stopped (ports, socket), say why, exit non-zero
  const die = (why: string) => {
    if (exiting) return;
    exiting = true;
    log(`FATAL: ${why}`);
    log('exiting (70): every port of this switch is gone with it');
    // a moment for the EWORKER answers to pending requests to go out, then stop and exit
    setTimeout(() => process.exit(70), 3000).unref();
    setTimeout(() => void (d ? d.stop() : Promise.resolve()).catch(() => undefined).then(() => process.exit(70)), 300);
  };
  process.on('uncaughtException', (e) => die(`internal error: ${e.stack ?? String(e)}`));
  // a rejected promise nobody awaited: every request path answers its own errors, so this is a
  // bug of ours — said loudly, and serving goes on
  process.on('unhandledRejection', (e) => log(`internal error (unhandled, serving on): ${e instanceof Error ? e.stack : String(e)}`));
  // signals are handled from before the socket exists: a stop asked for while starting waits
  // for the start, then stops (a second signal ends the process at once)
  let signalled = '';
  const stopped = new Promise<void>((resolve) => {
    const onSig = (sig: string) => {
      if (signalled) { log(`${sig} again, exiting now`); process.exit(1); }
      signalled = sig; console.log(`wasmap switch ${name}: ${sig}, stopping`); resolve();
    };
    process.on('SIGINT', () => onSig('SIGINT'));
    process.on('SIGTERM', () => onSig('SIGTERM'));
  });
  d = await Daemon.start({ switches: [name, ...new Set(extra)], socket, spinUs, poll, ioThreads, log, config: values.config ? resolvePath(values.config) : undefined, limits: limitsFromEnv(), onWorkerFailure: (reason) => die(reason) });
  if (!signalled) console.log(`wasmap switch ${name}: listening on ${socket} (pid ${process.pid}, --poll ${poll}${poll === 'adaptive' ? ` --spin-us ${spinUs}` : ''} --io-threads ${ioThreads})`);
  await stopped;
  if (exiting) return 70;
  await d.stop();
  return 0;
}

/** WASMAP_CTL_LIMITS='{"lineTimeoutMs":2000,...}' tightens the control socket's limits (tests). */
function limitsFromEnv(): Partial<CtlLimits> | undefined {
  const text = process.env.WASMAP_CTL_LIMITS;
  if (!text) return undefined;
  let o: unknown;
  try { o = JSON.parse(text); } catch { throw new WasmapError('EINVAL', 'WASMAP_CTL_LIMITS is not JSON'); }
  const out: Partial<CtlLimits> = {};
  for (const [k, v] of Object.entries(o as Record<string, unknown>)) {
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) throw new WasmapError('EINVAL', `WASMAP_CTL_LIMITS.${k} must be a positive whole number`);
    (out as Record<string, number>)[k] = v;
  }
  return out;
}

// `wasmap switch NAME`: run a switch daemon in the foreground.
import { parseArgs } from 'node:util';
import { Daemon, checkSocketPath, CtlLimits } from '../ctl/daemon.js';
import { defaultSocket } from '../ctl/paths.js';
import { WasmapError } from '../errors.js';
import { hostMissingReason } from '../host.js';
import { resolve as resolvePath } from 'node:path';

export const SWITCH_HELP = `wasmap switch — run a VALE switch daemon (forwarding in a worker thread)

Usage: wasmap switch NAME [--socket PATH] [--config FILE] [--spin-us N]

NAME is the switch, e.g. vale0. The daemon listens for \`wasmap ctl\` on a unix socket
(default $XDG_RUNTIME_DIR/wasmap/NAME.sock, else /run/wasmap/NAME.sock; mode 0600).
Ctrl-C or SIGTERM stop it: ports are detached, TAP devices it created disappear.
If the forwarding thread fails (or stops coming round for 60 s) the daemon says why and exits
with status 70; pending requests are answered EWORKER. A request line is at most 48 MiB,
nested at most 32 deep; 128 control connections are served at once.

After traffic the forwarding thread keeps polling for --spin-us microseconds (default 50000)
before it sleeps in poll(2): replies and acks are then picked up without a wake-up (tens of
µs each on a VM). A switch with no traffic for that long costs ~0 % CPU; --spin-us 0 sleeps
at once (least CPU, higher latency under sparse traffic).

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
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: { socket: { type: 'string' }, config: { type: 'string' }, 'spin-us': { type: 'string', default: '50000' }, help: { type: 'boolean', short: 'h' } } });
  if (values.help) { process.stdout.write(SWITCH_HELP); return 0; }
  const name = positionals[0];
  if (!name || !/^vale[A-Za-z0-9_]{0,11}$/.test(name)) throw new WasmapError('EINVAL', `give the switch name: wasmap switch valeX (e.g. vale0)${name ? `; '${name}' is not one` : ''}`);
  const socket = values.socket ?? defaultSocket(name);
  const spinUs = Number(values['spin-us']);
  if (!Number.isInteger(spinUs) || spinUs < 0 || spinUs > 10_000_000) throw new WasmapError('EINVAL', `--spin-us must be 0..10000000, not '${values['spin-us']}'`);
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
  d = await Daemon.start({ switches: [name], socket, spinUs, log, config: values.config ? resolvePath(values.config) : undefined, limits: limitsFromEnv(), onWorkerFailure: (reason) => die(reason) });
  if (!signalled) console.log(`wasmap switch ${name}: listening on ${socket} (pid ${process.pid})`);
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

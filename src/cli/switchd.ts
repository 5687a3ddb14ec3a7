// `wasmap switch NAME`: run a switch daemon in the foreground.
import { parseArgs } from 'node:util';
import { Daemon } from '../ctl/daemon.js';
import { defaultSocket } from '../ctl/paths.js';
import { WasmapError } from '../errors.js';
import { hostMissingReason } from '../host.js';

export const SWITCH_HELP = `wasmap switch — run a VALE switch daemon (forwarding in a worker thread)

Usage: wasmap switch NAME [--socket PATH] [--spin-us N]

NAME is the switch, e.g. vale0. The daemon listens for \`wasmap ctl\` on a unix socket
(default $XDG_RUNTIME_DIR/wasmap/NAME.sock, else /run/wasmap/NAME.sock; mode 0600).
Ctrl-C or SIGTERM stop it: ports are detached, TAP devices it created disappear.

After traffic the forwarding thread keeps polling for --spin-us microseconds (default 50000)
before it sleeps in poll(2): replies and acks are then picked up without a wake-up (tens of
µs each on a VM). A switch with no traffic for that long costs ~0 % CPU; --spin-us 0 sleeps
at once (least CPU, higher latency under sparse traffic).

Then, for example:
  wasmap ctl attach vale0 tap:wm0 --vnet-hdr 12    create (or open) TAP wm0, attach it
  wasmap ctl attach vale0 af_packet:veth1          attach an existing interface
  wasmap ctl list vale0        wasmap ctl stats vale0 [--prometheus]
`;

export async function switchd(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: { socket: { type: 'string' }, 'spin-us': { type: 'string', default: '50000' }, help: { type: 'boolean', short: 'h' } } });
  if (values.help) { process.stdout.write(SWITCH_HELP); return 0; }
  const name = positionals[0];
  if (!name || !/^vale[A-Za-z0-9_]{0,11}$/.test(name)) throw new WasmapError('EINVAL', `give the switch name: wasmap switch valeX (e.g. vale0)${name ? `; '${name}' is not one` : ''}`);
  const socket = values.socket ?? defaultSocket(name);
  const spinUs = Number(values['spin-us']);
  if (!Number.isInteger(spinUs) || spinUs < 0 || spinUs > 10_000_000) throw new WasmapError('EINVAL', `--spin-us must be 0..10000000, not '${values['spin-us']}'`);
  const missing = hostMissingReason();
  if (missing) console.error(`wasmap switch: warning: ${missing}; only virtual ports will work`);
  const d = await Daemon.start({ switches: [name], socket, spinUs, log: (s) => console.error(`wasmap switch: ${s}`) });
  console.log(`wasmap switch ${name}: listening on ${socket} (pid ${process.pid})`);
  await new Promise<void>((resolve) => {
    const stop = (sig: string) => { console.log(`wasmap switch ${name}: ${sig}, stopping`); resolve(); };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
  });
  await d.stop();
  return 0;
}

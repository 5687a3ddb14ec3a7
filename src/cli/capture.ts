// `wasmap capture`: mirror a port of a running switch into a pcap file.
import { parseArgs } from 'node:util';
import { resolve } from 'node:path';
import { CtlConnection } from '../ctl/client.js';
import { defaultSocket } from '../ctl/paths.js';
import { WasmapError } from '../errors.js';

export const CAPTURE_HELP = `wasmap capture — mirror a port's traffic into a pcap file (tcpdump -r reads it)

Usage: wasmap capture NAME PORT -w FILE.pcap [-c COUNT] [--socket PATH]

Records the frames PORT sends into switch NAME and the frames the switch delivers to it,
until COUNT frames (default: until Ctrl-C or SIGTERM). The daemon writes the file (mode 0600).
The capture lives as long as this command: killed, its capture stops with it. A capture
without its command can be stopped with: wasmap ctl capture-stop NAME PORT
`;

export async function capture(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: {
    w: { type: 'string' }, c: { type: 'string', default: '0' }, socket: { type: 'string' }, help: { type: 'boolean', short: 'h' } } });
  if (values.help) { process.stdout.write(CAPTURE_HELP); return 0; }
  const [sw, port] = positionals;
  if (!sw || !port || !values.w) throw new WasmapError('EINVAL', 'usage: wasmap capture NAME PORT -w FILE.pcap [-c COUNT]');
  const count = Number(values.c);
  if (!Number.isInteger(count) || count < 0) throw new WasmapError('EINVAL', `-c must be a whole number ≥ 0, not '${values.c}'`);
  const socket = values.socket ?? defaultSocket(sw);
  const file = resolve(values.w);
  // one connection for the capture's whole life: the daemon stops the capture when it closes
  const conn = await CtlConnection.open(socket);
  let stop = '';
  const onSig = (sig: string) => { stop = sig; };
  const onInt = () => onSig('SIGINT'), onTerm = () => onSig('SIGTERM');
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);
  try {
    await conn.request('capture', { switch: sw, port, file, count });
    console.error(`capturing ${sw}:${port} into ${file}${count ? `, ${count} frames` : ''} (Ctrl-C to stop)`);
    let frames = 0;
    for (;;) {
      await new Promise((r) => setTimeout(r, 100));
      if (stop) {
        try { frames = ((await conn.request('capture-stop', { switch: sw, port })) as { frames: number }).frames; } catch (e) {
          if ((e as WasmapError).code !== 'ENOENT') throw e; // ended by itself meanwhile (-c)
        }
        break;
      }
      const st = (await conn.request('capture-status', { switch: sw, port })) as { active: boolean; frames?: number };
      if (!st.active) { frames = count; break; }
      frames = st.frames ?? 0;
    }
    console.log(`${frames} frames captured to ${file}${stop ? ` (stopped by ${stop})` : ''}`);
  } finally {
    process.removeListener('SIGINT', onInt);
    process.removeListener('SIGTERM', onTerm);
    conn.close();
  }
  return 0;
}

// `wasmap capture`: mirror a port of a running switch into a pcap file.
import { parseArgs } from 'node:util';
import { resolve } from 'node:path';
import { ctlRequest } from '../ctl/client.js';
import { defaultSocket } from '../ctl/paths.js';
import { WasmapError } from '../errors.js';

export const CAPTURE_HELP = `wasmap capture — mirror a port's traffic into a pcap file (tcpdump -r reads it)

Usage: wasmap capture NAME PORT -w FILE.pcap [-c COUNT] [--socket PATH]

Records the frames PORT sends into switch NAME and the frames the switch delivers to it,
until COUNT frames (default: until Ctrl-C). The daemon writes the file (mode 0600).
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
  await ctlRequest(socket, 'capture', { switch: sw, port, file, count });
  console.error(`capturing ${sw}:${port} into ${file}${count ? `, ${count} frames` : ''} (Ctrl-C to stop)`);
  let stop = false;
  const onSig = () => { stop = true; };
  process.once('SIGINT', onSig);
  let frames = 0;
  for (;;) {
    await new Promise((r) => setTimeout(r, 100));
    const st = (await ctlRequest(socket, 'capture-status', { switch: sw, port })) as { active: boolean; frames?: number };
    if (!st.active) { frames = count; break; }
    frames = st.frames ?? 0;
    if (stop) { frames = ((await ctlRequest(socket, 'capture-stop', { switch: sw, port })) as { frames: number }).frames; break; }
  }
  process.removeListener('SIGINT', onSig);
  console.log(`${frames} frames captured to ${file}`);
  return 0;
}

// A control-socket client: one request, one reply, with errors that say what to do.
import { createConnection } from 'node:net';
import { WasmapError } from '../errors.js';
import type { Reply } from '../runner.js';

export async function ctlRequest(socket: string, verb: string, args: Record<string, unknown> = {}, timeoutMs = 10000): Promise<unknown> {
  const reply = await new Promise<Reply>((resolve, reject) => {
    const c = createConnection(socket);
    let buf = '';
    const timer = setTimeout(() => { c.destroy(); reject(new WasmapError('ETIMEDOUT', `no answer from the switch daemon at ${socket} within ${timeoutMs} ms`)); }, timeoutMs);
    c.on('connect', () => c.write(JSON.stringify({ id: 1, verb, args }) + '\n'));
    c.on('data', (d) => {
      buf += d;
      const nl = buf.indexOf('\n');
      if (nl >= 0) { clearTimeout(timer); c.end(); resolve(JSON.parse(buf.slice(0, nl)) as Reply); }
    });
    c.on('error', (e: Error & { code?: string }) => {
      clearTimeout(timer);
      if (e.code === 'ENOENT' || e.code === 'ECONNREFUSED') reject(new WasmapError('ENOSWITCH', `no switch daemon at ${socket}: is \`wasmap switch NAME\` running? (or pass --socket PATH)`));
      else if (e.code === 'EACCES') reject(new WasmapError('EACCES', `permission denied on ${socket}: the socket is mode 0600, run as the daemon's user (root)`));
      else reject(new WasmapError(e.code ?? 'EIO', `control socket ${socket}: ${e.message}`));
    });
  });
  if (!reply.ok) throw new WasmapError(reply.error.code, reply.error.message);
  return reply.result;
}

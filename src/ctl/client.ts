// A control-socket client: one request, one reply, with errors that say what to do; or a
// connection kept open for several (a capture lives as long as the connection that started it).
import { createConnection, Socket } from 'node:net';
import { WasmapError } from '../errors.js';
import { checkSocketPath } from './paths.js';
import type { Reply } from '../runner.js';

function socketError(socket: string, e: Error & { code?: string }): WasmapError {
  if (e.code === 'ENOENT' || e.code === 'ECONNREFUSED') return new WasmapError('ENOSWITCH', `no switch daemon at ${socket}: is \`wasmap switch NAME\` running? (or pass --socket PATH)`);
  if (e.code === 'EACCES') return new WasmapError('EACCES', `permission denied on ${socket}: the socket is mode 0600, run as the daemon's user (root)`);
  return new WasmapError(e.code ?? 'EIO', `control socket ${socket}: ${e.message}`);
}

function parseReply(socket: string, line: string): Reply {
  let r: unknown;
  try { r = JSON.parse(line); } catch { throw new WasmapError('EPROTO', `the switch daemon at ${socket} sent a line that is not JSON`); }
  if (typeof r !== 'object' || r === null || typeof (r as Reply).ok !== 'boolean') throw new WasmapError('EPROTO', `the switch daemon at ${socket} sent something that is not a reply`);
  return r as Reply;
}

function result(reply: Reply): unknown {
  if (!reply.ok) throw new WasmapError(String(reply.error?.code ?? 'EIO'), String(reply.error?.message ?? 'refused'));
  return reply.result;
}

export async function ctlRequest(socket: string, verb: string, args: Record<string, unknown> = {}, timeoutMs = 10000): Promise<unknown> {
  const c = await CtlConnection.open(socket, timeoutMs);
  try { return await c.request(verb, args, timeoutMs); } finally { c.close(); }
}

/** One connection to a switch daemon; requests are answered in order. */
export class CtlConnection {
  private buf = '';
  private seq = 0;
  private readonly waiting: { resolve: (r: Reply) => void; reject: (e: Error) => void }[] = [];
  private failed: WasmapError | null = null;
  private constructor(private readonly sock: Socket, readonly socket: string) {
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => {
      this.buf += d;
      for (let nl = this.buf.indexOf('\n'); nl >= 0; nl = this.buf.indexOf('\n')) {
        const line = this.buf.slice(0, nl);
        this.buf = this.buf.slice(nl + 1);
        const w = this.waiting.shift();
        if (!w) continue; // the daemon's reason for closing, with nothing asked: 'close' tells
        try { w.resolve(parseReply(socket, line)); } catch (e) { w.reject(e as Error); }
      }
    });
    sock.on('error', (e: Error & { code?: string }) => this.fail(socketError(socket, e)));
    sock.on('close', () => this.fail(new WasmapError('ECONNRESET', `the switch daemon at ${socket} closed the connection`)));
  }

  static open(socket: string, timeoutMs = 10000): Promise<CtlConnection> {
    checkSocketPath(socket);
    return new Promise((resolve, reject) => {
      const s = createConnection(socket);
      const timer = setTimeout(() => { s.destroy(); reject(new WasmapError('ETIMEDOUT', `no answer from the switch daemon at ${socket} within ${timeoutMs} ms`)); }, timeoutMs);
      s.once('connect', () => { clearTimeout(timer); s.removeAllListeners('error'); resolve(new CtlConnection(s, socket)); });
      s.once('error', (e: Error & { code?: string }) => { clearTimeout(timer); reject(socketError(socket, e)); });
    });
  }

  private fail(e: WasmapError): void {
    this.failed ??= e;
    for (const w of this.waiting.splice(0)) w.reject(this.failed);
  }

  /** Send one request, wait for its reply; the result, or the daemon's error as a WasmapError. */
  async request(verb: string, args: Record<string, unknown> = {}, timeoutMs = 10000): Promise<unknown> {
    if (this.failed) throw this.failed;
    const reply = await new Promise<Reply>((resolve, reject) => {
      const timer = setTimeout(() => { this.sock.destroy(); reject(new WasmapError('ETIMEDOUT', `no answer from the switch daemon at ${this.socket} within ${timeoutMs} ms`)); }, timeoutMs);
      this.waiting.push({ resolve: (r) => { clearTimeout(timer); resolve(r); }, reject: (e) => { clearTimeout(timer); reject(e); } });
      this.sock.write(JSON.stringify({ id: ++this.seq, verb, args }) + '\n');
    });
    return result(reply);
  }

  close(): void { this.sock.end(); this.sock.unref(); }
}

// The switch daemon: a worker thread runs the datapath; this thread serves the control socket
// (JSON lines over a unix socket, mode 0600) and relays each request to the worker.
import { Worker, MessageChannel, MessagePort } from 'node:worker_threads';
import { createServer, createConnection, Server, Socket } from 'node:net';
import { mkdirSync, unlinkSync, chmodSync, existsSync } from 'node:fs';
import { dirname } from 'node:path';
import { createInterface } from 'node:readline';
import { WasmapError } from '../errors.js';
import { findBuildFile } from '../paths.js';
import type { Request, Reply } from '../runner.js';
import { loadHost, NativeHost } from '../host.js';
import type { PtProcessInfo } from '../passthrough.js';

const MAX_REQUEST = 48 << 20;

export interface DaemonOptions { switches: string[]; socket: string; spinUs?: number; log?: (s: string) => void }

async function socketInUse(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const c = createConnection(path);
    c.once('connect', () => { c.destroy(); resolve(true); });
    c.once('error', () => resolve(false));
  });
}

export class Daemon {
  private worker!: Worker;
  private port!: MessagePort;
  private server!: Server;
  private seq = 0;
  private readonly pending = new Map<number, (r: Reply) => void>();
  private readonly clients = new Set<Socket>();
  private host: NativeHost | null = null;
  private wakeFd = -1; // wakes the forwarding thread out of poll(2) for a request
  private constructor(readonly opts: DaemonOptions) {}

  static async start(opts: DaemonOptions): Promise<Daemon> {
    const d = new Daemon(opts);
    await d.listenCheck();
    await d.startWorker();
    await d.listen();
    return d;
  }

  private async listenCheck(): Promise<void> {
    const path = this.opts.socket;
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    if (existsSync(path)) {
      if (await socketInUse(path)) throw new WasmapError('EADDRINUSE', `a switch daemon already listens on ${path}; stop it first or use --socket`);
      unlinkSync(path); // stale socket of a daemon that died
    }
  }

  private async startWorker(): Promise<void> {
    const script = findBuildFile('runner.mjs');
    if (!script) throw new WasmapError('NO_MODULE', 'build/runner.mjs not found: run `npm run build`');
    const { port1, port2 } = new MessageChannel();
    this.port = port1;
    this.host = loadHost();
    if (this.host) this.wakeFd = this.host.eventfdCreate();
    this.worker = new Worker(script, { workerData: { port: port2, switches: this.opts.switches, spinUs: this.opts.spinUs ?? 50000, wakeFd: this.wakeFd }, transferList: [port2] });
    await new Promise<void>((resolve, reject) => {
      const onErr = (e: Error) => reject(new WasmapError('EWORKER', `the forwarding worker failed to start: ${e.message}`));
      this.worker.once('error', onErr);
      port1.once('message', (m: { ready: boolean; error?: string }) => {
        this.worker.off('error', onErr);
        if (m.ready) resolve(); else reject(new WasmapError('EWORKER', `the forwarding worker failed: ${m.error}`));
      });
    });
    port1.on('message', (r: Reply) => {
      const done = this.pending.get(Number(r.id));
      if (done) { this.pending.delete(Number(r.id)); done(r); }
    });
    this.worker.on('error', (e) => this.opts.log?.(`forwarding worker error: ${e.message}`));
    this.worker.on('exit', (code) => {
      for (const done of this.pending.values()) done({ ok: false, error: { code: 'EWORKER', message: `forwarding worker exited (${code})` } });
      this.pending.clear();
    });
  }

  /** Relay one request to the worker. */
  request(req: Request): Promise<Reply> {
    const id = ++this.seq;
    return new Promise((resolve) => {
      this.pending.set(id, (r) => resolve({ ...r, id: req.id }));
      this.port.postMessage({ ...req, id });
      if (this.wakeFd >= 0) this.host!.eventfdSignal(this.wakeFd);
    });
  }

  // A passthrough guest's port: the reply goes out with the port's fds attached (SCM_RIGHTS,
  // which Node's sockets cannot send), and the port lives as long as this connection.
  private handOver(sock: Socket, reply: Reply): void {
    const info = (reply as { result: PtProcessInfo }).result;
    const [sw, port] = [info.name.slice(0, info.name.indexOf(':')), info.name.slice(info.name.indexOf(':') + 1)];
    const close = (reason: string) => void this.request({ verb: 'pt-close', args: { switch: sw, port, reason } });
    const fd = (sock as unknown as { _handle?: { fd?: number } })._handle?.fd;
    if (sock.destroyed || !this.host || typeof fd !== 'number' || fd < 0) { close('guest left before its port was handed over'); return; }
    const { fds, ...rest } = info;
    try {
      this.host.sendFds(fd, new TextEncoder().encode(JSON.stringify({ ...reply, result: rest }) + '\n'), [fds.region, fds.csb, fds.kickSwitch, fds.kickGuest]);
    } catch (e) {
      this.opts.log?.(`handing ${info.name} to its guest failed: ${(e as Error).message}`);
      close('handing the port over failed');
      sock.destroy();
      return;
    }
    this.opts.log?.(`passthrough guest attached to ${info.name}`);
    sock.once('close', () => { this.opts.log?.(`passthrough guest of ${info.name} left; port reclaimed`); close('guest closed its socket (exited or was killed)'); });
  }

  private async listen(): Promise<void> {
    this.server = createServer((sock) => {
      this.clients.add(sock);
      sock.on('close', () => this.clients.delete(sock));
      sock.on('error', () => sock.destroy());
      const lines = createInterface({ input: sock, crlfDelay: Infinity });
      lines.on('line', async (line) => {
        // set-lookup carries a module (≤ 16 MiB, base64) and its configuration
        if (line.length > MAX_REQUEST) { sock.write(JSON.stringify({ ok: false, error: { code: 'EMSGSIZE', message: `request longer than ${MAX_REQUEST >> 20} MiB` } }) + '\n'); return; }
        let req: Request;
        try {
          req = JSON.parse(line) as Request;
          if (typeof req !== 'object' || req === null || typeof req.verb !== 'string') throw new Error('not a request');
        } catch {
          sock.write(JSON.stringify({ ok: false, error: { code: 'EPROTO', message: 'expected one JSON object per line: {"verb": "...", "args": {...}}' } }) + '\n');
          return;
        }
        const reply = await this.request(req);
        if (req.verb === 'pt-open' && reply.ok) { this.handOver(sock, reply); return; }
        if (!sock.destroyed) sock.write(JSON.stringify(reply) + '\n');
      });
    });
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.opts.socket, () => resolve());
    });
    chmodSync(this.opts.socket, 0o600);
  }

  async stop(): Promise<void> {
    this.server?.close();
    for (const c of this.clients) c.destroy();
    try { unlinkSync(this.opts.socket); } catch { /* gone */ }
    if (this.worker) {
      const exited = new Promise((r) => this.worker.once('exit', r));
      this.port.postMessage({ id: ++this.seq, stop: true, verb: 'stop' });
      if (this.wakeFd >= 0) this.host!.eventfdSignal(this.wakeFd);
      const t = setTimeout(() => void this.worker.terminate(), 2000);
      await exited;
      clearTimeout(t);
      if (this.wakeFd >= 0) { this.host!.closeFd(this.wakeFd); this.wakeFd = -1; }
    }
  }
}

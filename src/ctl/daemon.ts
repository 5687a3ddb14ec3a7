// The switch daemon: a worker thread runs the datapath; this thread serves the control socket
// (JSON lines over a unix socket, mode 0600) and relays each request to the worker.
//
// A control client is a peer like any other: what it sends is read with limits enforced while
// reading (line length, bytes held for all clients together, nesting depth and value count
// before JSON.parse, requests in flight and unread replies per connection, connections, time
// to finish a line), every request gets exactly one reply in order or its connection is closed
// with a reason, and nothing a request carries besides {id, verb, args} reaches the worker.
// The worker is supervised: if its loop fails, every pending and later request is answered
// EWORKER and the owner (`wasmap switch`) is told, which exits loudly.
import { Worker, MessageChannel, MessagePort } from 'node:worker_threads';
import { createServer, createConnection, Server, Socket } from 'node:net';
import { mkdirSync, unlinkSync, chmodSync, lstatSync } from 'node:fs';
import { dirname } from 'node:path';
import { WasmapError } from '../errors.js';
import { findBuildFile } from '../paths.js';
import type { Request, Reply, PollMode } from '../runner.js';
import { loadHost, NativeHost } from '../host.js';
import { checkSocketPath } from './paths.js';
import { Topology } from './topology.js';
export { checkSocketPath, MAX_SOCKET_PATH } from './paths.js';
import type { PtProcessInfo } from '../backends/passthrough.js';

/** What a control client can make the daemon hold. */
export interface CtlLimits {
  /** Longest request line (set-lookup carries a module ≤ 16 MiB in base64 and its config). */
  maxRequestBytes: number;
  /** Bytes of unfinished lines held for all connections together. */
  maxHeldBytes: number;
  /** Deepest nesting of arrays/objects in a request. */
  maxDepth: number;
  /** Most JSON values (elements and members) in a request. */
  maxValues: number;
  /** Connections served at once (a passthrough guest holds one for its port's lifetime). */
  maxConnections: number;
  /** Requests of one connection accepted but not yet answered; beyond, reading pauses. */
  maxInFlight: number;
  /** Reply bytes a client has not read yet; beyond, reading its requests pauses. */
  maxReplyBacklog: number;
  /** A line started must end within this time (a dripping client is cut off). */
  lineTimeoutMs: number;
  /** The forwarding loop not coming round for this long is a failure of the worker (it
   *  sleeps ≤ 1 s in poll(2); a pass or a request taking this long is stuck). */
  loopStallMs: number;
}
export const DEFAULT_LIMITS: CtlLimits = {
  maxRequestBytes: 48 << 20, maxHeldBytes: 96 << 20, maxDepth: 32, maxValues: 1 << 20,
  maxConnections: 128, maxInFlight: 16, maxReplyBacklog: 16 << 20, lineTimeoutMs: 30000,
  loopStallMs: 60000,
};

export interface DaemonOptions {
  switches: string[]; socket: string; spinUs?: number; log?: (s: string) => void;
  /** How the forwarding thread waits for work (default adaptive: spin spinUs, then sleep). */
  poll?: PollMode;
  /** I/O threads for TAP ports' kernel I/O (0: in the forwarding loop). */
  ioThreads?: number;
  limits?: Partial<CtlLimits>;
  /** A topology file (src/ctl/topology.ts): built again at start when it exists, rewritten on
   *  every change of ports, interfaces or forwarding functions. */
  config?: string;
  /** The forwarding worker failed (its loop threw or it exited): the daemon now answers every
   *  request EWORKER; the owner should stop it and exit non-zero. Default: log only. */
  onWorkerFailure?: (reason: string) => void;
}

interface Slot { reply: Reply | null; verb: string }
interface Conn {
  sock: Socket;
  chunks: Buffer[]; held: number;   // the unfinished line
  lines: Buffer[];                  // complete lines waiting for room (in-flight limit)
  queue: Slot[];                    // accepted requests, answered in this order
  lineTimer: NodeJS.Timeout | null;
  closing: boolean;
  keepsPort: boolean;               // a passthrough guest: the connection is its port's life
  pumping: boolean;
}

type ProtoError = { code: string; message: string };

/** One pass over a request line before JSON.parse: nesting depth and number of values, with
 *  strings skipped (bytes inside them never count). UTF-8 continuation bytes never equal the
 *  ASCII bytes looked at, so scanning bytes is exact. */
export function scanJson(b: Buffer, maxDepth: number, maxValues: number): ProtoError | null {
  let depth = 0, values = 0;
  for (let i = 0; i < b.length; i++) {
    const c = b[i];
    if (c === 0x22) { // a string: jump to its closing quote (one not escaped)
      let j = i;
      for (;;) {
        j = b.indexOf(0x22, j + 1);
        if (j < 0) return null; // unterminated: JSON.parse refuses it
        let bs = 0;
        while (b[j - 1 - bs] === 0x5c) bs++;
        if ((bs & 1) === 0) break;
      }
      i = j;
    } else if (c === 0x5b || c === 0x7b) { // [ {
      if (++depth > maxDepth) return { code: 'EPROTO', message: `request nested deeper than ${maxDepth} levels` };
      values++;
    } else if (c === 0x5d || c === 0x7d) depth--;
    else if (c === 0x2c || c === 0x3a) { // , :
      if (++values > maxValues) return { code: 'EPROTO', message: `request has more than ${maxValues} values` };
    }
  }
  return null;
}

/** The request a line carries, or why it is not one. Only {id, verb, args} are kept. */
export function parseRequest(line: Buffer, limits: CtlLimits): Request | ProtoError {
  const bad = (m: string): ProtoError => ({ code: 'EPROTO', message: `${m}; expected one JSON object per line: {"id": N, "verb": "...", "args": {...}}` });
  const scan = scanJson(line, limits.maxDepth, limits.maxValues);
  if (scan) return scan;
  let v: unknown;
  try { v = JSON.parse(line.toString('utf8')); } catch { return bad('not JSON'); }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return bad('not a JSON object');
  const o = v as Record<string, unknown>;
  const id = o.id;
  if (id !== undefined && !(typeof id === 'number' && Number.isFinite(id)) && !(typeof id === 'string' && id.length <= 256)) return bad("'id' must be a number or a string of ≤ 256 characters");
  if (typeof o.verb !== 'string' || o.verb.length === 0 || o.verb.length > 64) return { ...bad("'verb' must be a string of 1 to 64 characters"), id } as ProtoError;
  const args = o.args;
  if (args !== undefined && args !== null && (typeof args !== 'object' || Array.isArray(args))) return { ...bad("'args' must be an object"), id } as ProtoError;
  return { id: id as number | string | undefined, verb: o.verb, args: (args ?? {}) as Record<string, unknown> };
}

async function socketInUse(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const c = createConnection(path);
    c.once('connect', () => { c.destroy(); resolve(true); });
    c.once('error', () => resolve(false));
  });
}

const errReply = (id: unknown, code: string, message: string): Reply =>
  ({ ...(typeof id === 'number' || typeof id === 'string' ? { id } : {}), ok: false, error: { code, message } });

export class Daemon {
  private worker: Worker | null = null;
  private workerExited: Promise<unknown> = Promise.resolve();
  private port: MessagePort | null = null;
  private server: Server | null = null;
  private seq = 0;
  private readonly pending = new Map<number, (r: Reply) => void>();
  private readonly conns = new Set<Conn>();
  private readonly captureOwner = new Map<string, Conn>(); // 'vale0:port' -> the connection that started its capture
  private held = 0;            // bytes of unfinished lines, all connections
  private workerFailed: string | null = null;
  private watchdog: NodeJS.Timeout | null = null;
  private stopping = false;
  private host: NativeHost | null = null;
  private wakeFd = -1; // wakes the forwarding thread out of poll(2) for a request
  readonly limits: CtlLimits;
  /** Counters of what clients were refused or cut off for. */
  readonly refused = { connections: 0, tooLong: 0, heldBudget: 0, lineTimeout: 0, protocol: 0 };
  /** What it was told to build (what `ctl save` writes; --config keeps it in a file). */
  readonly topology: Topology;
  private constructor(readonly opts: DaemonOptions) {
    this.limits = { ...DEFAULT_LIMITS, ...opts.limits };
    this.topology = new Topology(opts.switches, opts.config ?? null);
  }

  /** Listen first (a path that cannot be bound fails before anything runs), then start the
   *  worker; on any failure everything started is torn down and the socket removed. */
  static async start(opts: DaemonOptions): Promise<Daemon> {
    checkSocketPath(opts.socket);
    const d = new Daemon(opts);
    await d.listenCheck();
    try {
      const saved = opts.config ? Topology.load(opts.config) : null; // a bad file fails the start, with why
      await d.listen();
      await d.startWorker();
      if (saved) await d.restore(saved);
    } catch (e) {
      await d.stop();
      throw e;
    }
    return d;
  }

  private async listenCheck(): Promise<void> {
    const path = this.opts.socket;
    try { mkdirSync(dirname(path), { recursive: true, mode: 0o700 }); } catch (e) {
      throw new WasmapError('EACCES', `cannot create the directory of the control socket ${path}: ${(e as Error).message}`);
    }
    let st;
    try { st = lstatSync(path); } catch { return; }
    if (!st.isSocket()) throw new WasmapError('EEXIST', `${path} exists and is not a socket; refusing to replace it: pick another --socket`);
    if (await socketInUse(path)) throw new WasmapError('EADDRINUSE', `a switch daemon already listens on ${path}; stop it first or use --socket`);
    unlinkSync(path); // stale socket of a daemon that died
  }

  private async startWorker(): Promise<void> {
    const script = findBuildFile('runner.mjs');
    if (!script) throw new WasmapError('NO_MODULE', 'build/runner.mjs not found: run `npm run build`');
    const { port1, port2 } = new MessageChannel();
    this.port = port1;
    this.host = loadHost();
    if (this.host) this.wakeFd = this.host.eventfdCreate();
    const heartbeat = new Int32Array(new SharedArrayBuffer(4));
    const worker = new Worker(script, { workerData: { port: port2, switches: this.opts.switches, spinUs: this.opts.spinUs ?? 50000, poll: this.opts.poll ?? 'adaptive', ioThreads: this.opts.ioThreads ?? 0, wakeFd: this.wakeFd, heartbeat }, transferList: [port2] });
    this.worker = worker;
    this.workerExited = new Promise((r) => worker.once('exit', r));
    await new Promise<void>((resolve, reject) => {
      const onErr = (e: Error) => reject(new WasmapError('EWORKER', `the forwarding worker failed to start: ${e.message}`));
      const onExit = (code: number) => reject(new WasmapError('EWORKER', `the forwarding worker exited (${code}) while starting`));
      worker.once('error', onErr);
      worker.once('exit', onExit);
      port1.once('message', (m: { ready: boolean; error?: string }) => {
        worker.off('error', onErr); worker.off('exit', onExit);
        if (m.ready) resolve(); else reject(new WasmapError('EWORKER', `the forwarding worker failed: ${m.error}`));
      });
    });
    port1.on('message', (r: Reply & { fatal?: string }) => {
      if (typeof r.fatal === 'string') { this.fail(`the forwarding loop failed: ${r.fatal}`); return; }
      const done = this.pending.get(Number(r.id));
      if (done) { this.pending.delete(Number(r.id)); done(r); }
    });
    worker.on('error', (e) => this.fail(`the forwarding worker failed: ${e.stack ?? e.message}`));
    // the watchdog: the loop must come round; if it does not, nothing forwards and nothing answers
    let last = Atomics.load(heartbeat, 0), since = performance.now();
    this.watchdog = setInterval(() => {
      const now = Atomics.load(heartbeat, 0), t = performance.now();
      if (now !== last) { last = now; since = t; return; }
      if (t - since >= this.limits.loopStallMs) this.fail(`the forwarding loop has not come round for ${Math.round((t - since) / 1000)} s (a pass or a request that does not return)`);
    }, Math.min(1000, this.limits.loopStallMs / 4));
    this.watchdog.unref();
    worker.on('exit', (code) => { if (!this.stopping) this.fail(`the forwarding worker exited (code ${code})`); });
  }

  /** The worker is gone or broken: answer everything EWORKER from now on, tell the owner once. */
  private fail(reason: string): void {
    if (this.workerFailed) return;
    this.workerFailed = reason;
    if (this.watchdog) { clearInterval(this.watchdog); this.watchdog = null; }
    this.opts.log?.(`FATAL: ${reason}`);
    for (const done of this.pending.values()) done(errReply(undefined, 'EWORKER', `the switch's forwarding thread failed; nothing is forwarded: ${reason.split('\n')[0]}`));
    this.pending.clear();
    this.opts.onWorkerFailure?.(reason);
  }

  /** Build a saved topology again, request by request; what cannot be built (an interface
   *  gone meanwhile) is logged and left out, and the file then holds what was built. */
  private async restore(t: ReturnType<typeof Topology.load> & object): Promise<void> {
    let done = 0;
    const reqs = Topology.requests(t);
    for (const req of reqs) {
      const sw = req.args?.switch;
      if (typeof sw === 'string' && !this.opts.switches.includes(sw)) { this.opts.log?.(`config: ${req.verb} ${String(req.args?.port ?? '')} is for switch ${sw}, not run here: skipped`); continue; }
      const r = await this.request(req);
      if (r.ok) done++;
      else this.opts.log?.(`config: ${req.verb} ${String(req.args?.port ?? req.args?.name ?? req.args?.switch ?? '')} not restored: ${r.error.message}`);
    }
    this.opts.log?.(`config: restored ${done} of ${reqs.length} from ${this.opts.config}`);
  }

  /** Relay one request to the worker; always resolves, with the worker's reply or an error. */
  request(req: Request): Promise<Reply> {
    if (req.verb === 'topology') return Promise.resolve({ id: req.id, ok: true, result: this.topology.toJSON() });
    if (this.workerFailed) return Promise.resolve(errReply(req.id, 'EWORKER', `the switch's forwarding thread failed; nothing is forwarded: ${this.workerFailed.split('\n')[0]}`));
    if (!this.port) return Promise.resolve(errReply(req.id, 'EAGAIN', 'the switch is starting'));
    const id = ++this.seq;
    return new Promise((resolve) => {
      this.pending.set(id, (r) => {
        try { this.topology.record(req, r); } catch (e) { this.opts.log?.(`config: cannot save ${this.opts.config}: ${(e as Error).message}`); }
        resolve({ ...r, id: req.id });
      });
      try {
        this.port!.postMessage({ id, verb: req.verb, args: req.args ?? {} });
      } catch (e) {
        this.pending.delete(id);
        resolve(errReply(req.id, 'EINVAL', `the request cannot be relayed to the switch: ${(e as Error).message}`));
        return;
      }
      if (this.wakeFd >= 0) this.host!.eventfdSignal(this.wakeFd);
    });
  }

  // A passthrough guest's port: the reply goes out with the port's fds attached (SCM_RIGHTS,
  // which Node's sockets cannot send), and the port lives as long as this connection.
  private handOver(c: Conn, reply: Reply): void {
    const sock = c.sock;
    const info = (reply as { result: PtProcessInfo }).result;
    const [sw, port] = [info.name.slice(0, info.name.indexOf(':')), info.name.slice(info.name.indexOf(':') + 1)];
    const close = (reason: string) => void this.request({ verb: 'pt-close', args: { switch: sw, port, reason } });
    const fd = (sock as unknown as { _handle?: { fd?: number } })._handle?.fd;
    if (sock.destroyed || c.closing || !this.host || typeof fd !== 'number' || fd < 0) { close('guest left before its port was handed over'); return; }
    const { fds, ...rest } = info;
    try {
      this.host.sendFds(fd, new TextEncoder().encode(JSON.stringify({ ...reply, result: rest }) + '\n'), [fds.region, fds.csb, fds.kickSwitch, fds.kickGuest]);
    } catch (e) {
      this.opts.log?.(`handing ${info.name} to its guest failed: ${(e as Error).message}`);
      close('handing the port over failed');
      sock.destroy();
      return;
    }
    c.keepsPort = true;
    this.opts.log?.(`passthrough guest attached to ${info.name}`);
    sock.once('close', () => { this.opts.log?.(`passthrough guest of ${info.name} left; port reclaimed`); close('guest closed its socket (exited or was killed)'); });
  }

  private async listen(): Promise<void> {
    // half-open: a client may send its requests and shut down its side; it still gets replies
    this.server = createServer({ allowHalfOpen: true }, (sock) => this.accept(sock));
    // the socket file is created by bind(2) with the process umask: make it private from the
    // first moment (Node binds a unix socket synchronously inside listen(), so the umask is
    // changed only around that call, not while anything else runs), then set 0600 explicitly
    try {
      await new Promise<void>((resolve, reject) => {
        this.server!.once('error', reject);
        const umask = process.umask(0o177);
        try { this.server!.listen(this.opts.socket, () => { this.server!.off('error', reject); resolve(); }); } finally { process.umask(umask); }
      });
    } catch (e) {
      const err = e as Error & { code?: string };
      this.server = null;
      throw new WasmapError(err.code ?? 'EIO', `cannot listen on ${this.opts.socket}: ${err.code === 'EACCES' ? 'permission denied (a directory where sockets can be created?)' : err.message}`);
    }
    this.server.on('error', (e) => this.opts.log?.(`control socket: ${e.message}`));
    chmodSync(this.opts.socket, 0o600);
  }

  // ---- one control connection ------------------------------------------------------------

  private accept(sock: Socket): void {
    sock.on('error', () => sock.destroy());
    if (this.conns.size >= this.limits.maxConnections || this.stopping) {
      this.refused.connections++;
      sock.end(JSON.stringify(errReply(undefined, 'EBUSY', this.stopping ? 'the switch is stopping' : `the switch serves ${this.limits.maxConnections} control connections at most; try again later`)) + '\n');
      setTimeout(() => sock.destroy(), 1000).unref();
      return;
    }
    const c: Conn = { sock, chunks: [], held: 0, lines: [], queue: [], lineTimer: null, closing: false, keepsPort: false, pumping: false };
    this.conns.add(c);
    sock.on('data', (d: Buffer) => this.onData(c, d));
    sock.on('drain', () => this.pump(c));
    sock.on('end', () => { // half-closed: a last line without newline is a request too; answer, then close
      if (c.closing) return;
      if (c.held) { const line = Buffer.concat(c.chunks); this.dropHeld(c); c.lines.push(line); }
      this.pump(c);
    });
    sock.on('close', () => this.closed(c));
  }

  private dropHeld(c: Conn): void {
    this.held -= c.held; c.held = 0; c.chunks = [];
    if (c.lineTimer) { clearTimeout(c.lineTimer); c.lineTimer = null; }
  }

  /** Close a connection with a reason: one error reply, then the end. Whatever it still sends
   *  is read and discarded (so the reply is not lost to a reset), for at most a second. */
  private cutOff(c: Conn, code: string, message: string): void {
    if (c.closing) return;
    c.closing = true;
    this.dropHeld(c);
    c.lines = []; c.queue = [];
    this.opts.log?.(`control client cut off: ${code}: ${message}`);
    c.sock.end(JSON.stringify(errReply(undefined, code, message)) + '\n');
    c.sock.resume();
    setTimeout(() => c.sock.destroy(), 1000).unref();
  }

  private closed(c: Conn): void {
    this.dropHeld(c);
    c.closing = true; c.lines = [];
    this.conns.delete(c);
    // a capture lives as long as the connection that started it
    for (const [full, owner] of [...this.captureOwner]) {
      if (owner !== c) continue;
      this.captureOwner.delete(full);
      this.stopCapture(full, 'its client left');
    }
  }

  private stopCapture(full: string, why: string): void {
    const i = full.indexOf(':');
    void this.request({ verb: 'capture-stop', args: { switch: full.slice(0, i), port: full.slice(i + 1) } }).then((r) => {
      if (r.ok) this.opts.log?.(`capture of ${full} stopped: ${why} (${(r.result as { frames: number }).frames} frames)`);
    });
  }

  private onData(c: Conn, d: Buffer): void {
    if (c.closing) return;
    const L = this.limits;
    let start = 0;
    for (;;) {
      const nl = d.indexOf(0x0a, start);
      if (nl < 0) break;
      const piece = d.subarray(start, nl);
      if (c.held + piece.length > L.maxRequestBytes) { this.refused.tooLong++; this.cutOff(c, 'EMSGSIZE', `request longer than ${L.maxRequestBytes} bytes`); return; }
      const line = c.held ? Buffer.concat([...c.chunks, piece]) : piece;
      this.dropHeld(c);
      c.lines.push(line);
      start = nl + 1;
    }
    if (start < d.length) {
      const rest = d.subarray(start);
      if (c.held + rest.length > L.maxRequestBytes) { this.refused.tooLong++; this.cutOff(c, 'EMSGSIZE', `request longer than ${L.maxRequestBytes} bytes (no newline)`); return; }
      if (this.held + rest.length > L.maxHeldBytes) { this.refused.heldBudget++; this.cutOff(c, 'ENOBUFS', `the switch holds ${L.maxHeldBytes} bytes of unfinished requests for all clients at most; try again later`); return; }
      if (c.held === 0) {
        c.lineTimer = setTimeout(() => { this.refused.lineTimeout++; this.cutOff(c, 'ETIMEDOUT', `a request line was not finished within ${L.lineTimeoutMs} ms`); }, L.lineTimeoutMs);
        c.lineTimer.unref();
      }
      c.chunks.push(rest); c.held += rest.length; this.held += rest.length;
    }
    this.pump(c);
  }

  /** Start the waiting lines while there is room; pause reading while there is none. */
  private pump(c: Conn): void {
    if (c.closing || c.pumping) return; // not re-entered from flush: a loop, never a recursion per line
    c.pumping = true;
    try {
      while (c.lines.length && c.queue.length < this.limits.maxInFlight && c.sock.writableLength < this.limits.maxReplyBacklog) {
        this.start(c, c.lines.shift()!);
      }
    } finally { c.pumping = false; }
    if (c.closing) return;
    if (c.lines.length || c.queue.length >= this.limits.maxInFlight || c.sock.writableLength >= this.limits.maxReplyBacklog) c.sock.pause();
    else if (c.sock.isPaused()) c.sock.resume();
    if (c.sock.readableEnded && !c.closing && c.queue.length === 0 && c.lines.length === 0 && c.sock.writable) c.sock.end();
  }

  private start(c: Conn, line: Buffer): void {
    const slot: Slot = { reply: null, verb: '' };
    c.queue.push(slot);
    const req = parseRequest(line, this.limits);
    if ('code' in req) {
      this.refused.protocol++;
      slot.reply = errReply((req as { id?: unknown }).id, req.code, req.message);
      this.flush(c);
      return;
    }
    slot.verb = req.verb;
    this.request(req).then((r) => { slot.reply = r; }, (e: Error) => { slot.reply = errReply(req.id, 'EINTERNAL', e.message); })
      .then(() => this.flush(c))
      .catch((e: Error) => this.opts.log?.(`control reply failed: ${e.message}`));
  }

  private flush(c: Conn): void {
    while (c.queue.length && c.queue[0].reply) {
      const { reply, verb } = c.queue.shift()!;
      if (reply!.ok && verb === 'capture') {
        const full = String((reply!.result as { port: string }).port);
        if (this.conns.has(c)) this.captureOwner.set(full, c);
        else this.stopCapture(full, 'its client left before the capture started'); // closed meanwhile
      }
      if (reply!.ok && verb === 'capture-stop') this.captureOwner.delete(String((reply!.result as { port: string }).port));
      if (c.closing || c.sock.destroyed) continue;
      if (verb === 'pt-open' && reply!.ok) { this.handOver(c, reply!); continue; }
      let text: string;
      try { text = JSON.stringify(reply); } catch (e) { text = JSON.stringify(errReply(reply!.id, 'EINTERNAL', `the reply cannot be encoded: ${(e as Error).message}`)); }
      c.sock.write(text + '\n');
    }
    this.pump(c);
  }

  /** Connections, bytes held and refusals (for tests and the fuzz suite). */
  status(): { connections: number; held: number; pending: number; refused: Daemon['refused']; workerFailed: string | null } {
    return { connections: this.conns.size, held: this.held, pending: this.pending.size, refused: { ...this.refused }, workerFailed: this.workerFailed };
  }

  async stop(): Promise<void> {
    this.stopping = true;
    if (this.watchdog) { clearInterval(this.watchdog); this.watchdog = null; }
    this.server?.close();
    for (const c of this.conns) { this.dropHeld(c); c.sock.destroy(); }
    if (this.server) { try { unlinkSync(this.opts.socket); } catch { /* gone */ } }
    const worker = this.worker;
    if (worker) {
      this.worker = null;
      try { this.port?.postMessage({ id: ++this.seq, ctl: 'stop', verb: '' }); } catch { /* closed */ }
      if (this.wakeFd >= 0) this.host!.eventfdSignal(this.wakeFd);
      const t = setTimeout(() => void worker.terminate(), 2000);
      await this.workerExited;
      clearTimeout(t);
    }
    this.port?.close();
    if (this.wakeFd >= 0) { this.host!.closeFd(this.wakeFd); this.wakeFd = -1; }
  }
}

// The forwarding loop and the control operations it serialises with. It owns the Datapath
// (one shared memory), the VALE registry and the host ports; it runs in a worker thread of
// the switch daemon, or in-process for tests. Busy while there is work, then it sleeps in
// poll(2) on the host ports' fds so an idle switch costs ~0 % CPU.
import { readdirSync, readlinkSync } from 'node:fs';
import { basename, resolve } from 'node:path';
import { Datapath } from './datapath.js';
import { WasmapError } from './errors.js';
import { loadHost, requireHost, NativeHost } from './host.js';
import { parsePortName } from './portname.js';
import { Vale } from './vale.js';
import { HostPort, HostKind } from './backends/hostport.js';
import { PortStats } from './switch.js';
import { PcapWriter } from './backends/capture.js';
import { PtPort, PtMode } from './passthrough.js';
import { VhostUserPort } from './backends/vhost-user.js';
import type { Fallback } from './fn/host.js';

export interface Request { id?: number | string; verb: string; args?: Record<string, unknown> }
export type Reply = { id?: number | string; ok: true; result: unknown } | { id?: number | string; ok: false; error: { code: string; message: string } };

const num = (b: bigint) => Number(b);
const PORT_NAME_RE = /^[A-Za-z0-9_.-]+$/; // what a switch port may be named (src/switch.ts)

export class Runner {
  private static readonly nap = new Int32Array(new SharedArrayBuffer(4)); // a word nobody changes: a plain sleep
  readonly dp = new Datapath();
  readonly vale = new Vale(this.dp);
  private readonly hostPorts = new Map<string, HostPort>(); // 'vale0:IF' -> host port
  private readonly captures = new Map<string, PcapWriter>(); // 'vale0:port' -> its pcap
  private readonly ptPorts = new Map<string, PtPort>(); // 'vale0:port' -> passthrough port
  private readonly ptGone: { name: string; reason: string; kicksIn: number; kicksOut: number; at: number; stats: Record<string, number | string>; audit: string[] }[] = [];
  private readonly vhostPorts = new Map<string, VhostUserPort>(); // 'vale0:vm1' -> vhost-user port
  // Ports whose work threw (a bug, or a peer that got a backend into a state it cannot handle):
  // the port is down with this reason until detached, its kernel/guest resources released; the
  // frames the switch still delivers to it are taken off its rx ring and counted in faultDrops.
  private readonly faults = new Map<string, { reason: string; at: number; drops: number }>();
  private readonly captureStops = new Map<string, string>(); // 'vale0:port' -> why its capture stopped
  private lastWork = 0;
  private lastVhostService = 0;
  readonly started = Date.now();
  stopping = false;

  constructor(readonly switchNames: string[] = []) {
    for (const n of switchNames) this.vale.switch(n, true);
  }

  private host(): NativeHost { return requireHost(); }

  /** One pass: kernel → rings, forward on every switch, rings → kernel. Returns frames moved. */
  step(): number {
    const u8 = this.dp.u8;
    let moved = 0;
    // every port's own work is fenced: a throw takes that port down (portFault), not the pass
    for (const [full, hp] of this.hostPorts) moved += this.portWork(full, 'pull', () => hp.pull(u8));
    for (const [full, vp] of this.vhostPorts) moved += this.portWork(full, 'pull', () => vp.pull());
    const now = Math.floor(Date.now() / 1000);
    const marks = this.captures.size ? this.captureBefore() : null;
    for (const name of this.vale.switchNames()) moved += this.vale.switch(name).round(now);
    if (this.ptPorts.size) this.kickGuests();
    if (marks) this.captureAfter(marks);
    for (const [full, hp] of this.hostPorts) moved += this.portWork(full, 'push', () => hp.push(u8));
    for (const [full, vp] of this.vhostPorts) moved += this.portWork(full, 'push', () => vp.push());
    if (this.faults.size) this.drainFaulted();
    return moved;
  }

  /** Run one piece of port `full`'s work; a throw takes the port down. Returns frames moved. */
  private portWork(full: string, what: string, work: () => number | void): number {
    if (this.faults.has(full)) return 0;
    try { return work() || 0; } catch (e) { this.portFault(full, what, e); return 0; }
  }

  /** Port `full`'s work threw: mark it down with the reason and release what it holds outside
   *  the switch (kernel endpoint, guest memory and socket, capture). A passthrough port is
   *  reclaimed like a departed guest (its reason in guestsGone). The switch port itself stays
   *  (listed down) until detached. Never throws. */
  private portFault(full: string, what: string, e: unknown): void {
    const msg = e instanceof Error ? e.message : String(e);
    const reason = `fault in ${what}: ${msg.length > 300 ? `${msg.slice(0, 300)}…` : msg}; port taken down (detach it to remove it)`;
    try { console.error(`wasmap: ${full}: ${reason}`); } catch { /* no stderr */ }
    const pcap = this.captures.get(full);
    if (pcap) { pcap.close(); this.captures.delete(full); this.captureStops.set(full, `port fault: ${msg}`); }
    const i = full.indexOf(':');
    if (this.ptPorts.has(full)) {
      try { this.ptClose(full.slice(0, i), full.slice(i + 1), reason); } catch { this.ptPorts.delete(full); }
      return;
    }
    this.faults.set(full, { reason, at: Date.now(), drops: 0 });
    const hp = this.hostPorts.get(full);
    if (hp) { hp.down = reason; try { hp.close(); } catch { /* keep the first error */ } }
    const vp = this.vhostPorts.get(full);
    if (vp) { try { vp.close(); } catch { /* keep the first error */ } }
  }

  // frames the switch delivered to a faulted port since: off its rx ring, counted
  private drainFaulted(): void {
    for (const [full, f] of this.faults) {
      const p = this.portOf(full);
      if (!p) continue;
      try { f.drops += p.recv().length; } catch { /* the ring is ours: nothing to fix here */ }
    }
  }

  // the rounds marked the guests that asked for a kick and got news (worker guests were
  // already notified from wasm; process guests sleep on an eventfd)
  private kickGuests(): void {
    const a = this.dp.abi;
    for (const [full, pt] of [...this.ptPorts]) {
      if (this.dp.u32(pt.sw.sw + a.SW_KICKS_DUE) === 0) continue;
      if (this.dp.fn.pt_take_kick(pt.sw.sw, pt.port.index)) this.portWork(full, 'kick', () => pt.kick());
    }
  }

  private portOf(full: string) {
    const i = full.indexOf(':');
    return this.vale.has(full.slice(0, i)) ? this.vale.switch(full.slice(0, i)).port(full.slice(i + 1)) : undefined;
  }

  // What a round took from a port's tx ring is [hwcur before, hwcur after) and what it
  // delivered to its rx ring [hwtail before, hwtail after): both ends from the krings, which
  // only the switch writes (a passthrough guest's ring head/tail and header are never read).
  private captureBefore(): Map<string, [number, number]> {
    const marks = new Map<string, [number, number]>(), a = this.dp.abi;
    for (const full of this.captures.keys()) {
      const p = this.portOf(full);
      if (p) marks.set(full, [this.dp.u32(p.tx.kring + a.KR_HWCUR), this.dp.u32(p.rx.kring + a.KR_HWTAIL)]);
    }
    return marks;
  }
  private captureAfter(marks: Map<string, [number, number]>): void {
    const a = this.dp.abi;
    for (const [full, pcap] of this.captures) {
      const p = this.portOf(full), m = marks.get(full);
      try {
        if (p && m) {
          pcap.frames(this.dp, p.tx.kring, m[0], this.dp.u32(p.tx.kring + a.KR_HWCUR));
          pcap.frames(this.dp, p.rx.kring, m[1], this.dp.u32(p.rx.kring + a.KR_HWTAIL));
        }
      } catch (e) { // the pcap file failed (disk full...): the capture stops, the port goes on
        this.captureStops.set(full, `capture stopped after ${pcap.count} frames: ${(e as Error).message}`);
        pcap.close(); this.captures.delete(full);
        continue;
      }
      if (pcap.done) { pcap.close(); this.captures.delete(full); }
    }
  }

  /** Step; when nothing moved for `spinUs`, sleep up to `maxSleepMs` waiting for input. The
   *  short spin after traffic catches the answer to what was just forwarded (a ping reply, a
   *  TCP ack) without a sleep/wake-up on each side; an idle switch sleeps in poll(2). */
  stepOrSleep(maxSleepMs = 10, spinUs = 300, wakeFd = -1): number {
    const moved = this.step();
    const now = performance.now();
    // vhost-user control messages are served between passes, at least every 2 ms while busy
    // (QEMU waits for some replies), at once after a sleep
    if (this.vhostPorts.size && now - this.lastVhostService >= 2) this.vhostService(now);
    if (moved > 0) { this.lastWork = now; return moved; }
    if ((now - this.lastWork) * 1000 < spinUs) return 0;
    const fds = [...this.hostPorts.values()].filter((h) => !h.down && h.fd >= 0).map((h) => h.fd);
    if (wakeFd >= 0) fds.push(wakeFd); // another thread signals it when a request waits
    const pts = [...this.ptPorts.values()];
    if (pts.length) {
      // ask the guests for a kick, then look once more: a guest that wrote just before
      // the flag went up has not kicked, and its work must not wait for the next one
      let pending = 0;
      for (const sw of new Set(pts.map((p) => p.sw.sw))) pending += this.dp.fn.pt_sleep(sw);
      if (pending) { this.ptWake(pts); return 0; }
      for (const p of pts) fds.push(p.kickSwitch);
    }
    const vfrom = fds.length;
    for (const [full, vp] of this.vhostPorts) {
      if (this.faults.has(full)) continue;
      let v: string = 'sleep';
      this.portWork(full, 'sleep', () => { v = vp.sleepFds(fds); }); // the same ask-then-look for virtqueues (EVENT_IDX)
      if (v === 'work') return 0;
      if (v === 'nap') maxSleepMs = Math.min(maxSleepMs, 1);
    }
    const host = loadHost();
    if (fds.length && host) {
      const rev = host.pollFds(fds, maxSleepMs);
      if (wakeFd >= 0) host.eventfdDrain(wakeFd);
      if (this.vhostPorts.size) {
        for (const [full, vp] of this.vhostPorts) this.portWork(full, 'wake-up', () => vp.woke(fds.slice(vfrom), rev.slice(vfrom)));
        this.vhostService(performance.now());
      }
    } else Atomics.wait(Runner.nap, 0, 0, maxSleepMs);
    if (pts.length) this.ptWake(pts);
    return 0;
  }

  /** Accept QEMU connections and answer their messages (never blocks). */
  vhostService(now = performance.now()): void {
    this.lastVhostService = now;
    for (const [full, vp] of this.vhostPorts) this.portWork(full, 'vhost-user service', () => vp.service());
  }

  private ptWake(pts: PtPort[]): void {
    for (const sw of new Set(pts.map((p) => p.sw.sw))) this.dp.fn.pt_wake(sw);
    for (const [full, p] of [...this.ptPorts]) if (pts.includes(p)) this.portWork(full, 'kick drain', () => p.drainKicks());
  }

  /** Open `port` of switch `sw` for a passthrough guest (a new port; its name must be free). */
  ptOpen(sw: string, port: string, mode: PtMode, o: { slots?: number; bufSize?: number } = {}): PtPort {
    const name = port.replace(new RegExp(`^${sw}:`), '');
    const full = `${sw}:${name}`;
    if (this.ptPorts.has(full)) throw new WasmapError('EBUSY', `${full} already has a passthrough guest; one guest per port`);
    const s = this.vale.switch(sw);
    if (s.port(name)) throw new WasmapError('EBUSY', `${full} is already attached as an ordinary port; pick a new name for the guest's port`);
    for (const [k, v] of [['slots', o.slots], ['bufSize', o.bufSize]] as const) {
      if (v !== undefined && (!Number.isInteger(v) || v <= 0)) throw new WasmapError('EINVAL', `${k} must be a positive whole number, not ${String(v)}`);
    }
    const pt = new PtPort(this.host(), this.dp, s, name, mode, o);
    this.ptPorts.set(full, pt);
    return pt;
  }

  /** The guest of `port` is gone: reclaim its port (counters kept with the detached ones). */
  ptClose(sw: string, port: string, reason: string): unknown {
    const full = this.full(sw, port);
    const pt = this.ptPorts.get(full);
    if (!pt) throw new WasmapError('ENOENT', `no passthrough port ${full}`);
    const pcap = this.captures.get(full);
    if (pcap) { pcap.close(); this.captures.delete(full); }
    this.ptPorts.delete(full);
    const r = pt.close()!;
    this.ptGone.push({ name: full, reason, kicksIn: r.kicksIn, kicksOut: r.kicksOut, at: Date.now(), stats: this.plain(r.stats), audit: r.problems });
    if (this.ptGone.length > 256) this.ptGone.shift();
    return { name: full, reason, stats: this.plain(r.stats), kicksIn: r.kicksIn, kicksOut: r.kicksOut, audit: r.problems };
  }

  /** Leak checks: bytes of linear memory handed out, the memfds/eventfds this process holds,
   *  its sockets, and guest RAM mapped for vhost-user ports. */
  memory(): { allocated: number; fds: number; sockets: number; guestMapped: number } {
    let fds = 0, sockets = 0;
    for (const f of readdirSync('/proc/self/fd')) {
      try {
        const l = readlinkSync(`/proc/self/fd/${f}`);
        if (/^(\/memfd:|anon_inode:\[eventfd\])/.test(l)) fds++;
        else if (l.startsWith('socket:')) sockets++;
      } catch { /* closed meanwhile */ }
    }
    let guestMapped = 0;
    for (const vp of this.vhostPorts.values()) guestMapped += vp.mappedBytes;
    return { allocated: this.dp.allocated, fds, sockets, guestMapped };
  }

  handle(req: Request): Reply {
    try {
      return { id: req.id, ok: true, result: this.dispatch(req.verb, req.args ?? {}) };
    } catch (e) {
      const err = e as Error & { code?: string };
      return { id: req.id, ok: false, error: { code: err instanceof WasmapError ? err.code : (err.code ?? 'EINTERNAL'), message: err.message } };
    }
  }

  private str(args: Record<string, unknown>, key: string, what: string): string {
    const v = args[key];
    if (typeof v !== 'string' || !v) throw new WasmapError('EINVAL', `missing ${what} ('${key}')`);
    return v;
  }

  private swName(args: Record<string, unknown>): string {
    const name = this.str(args, 'switch', 'switch name');
    if (!this.vale.has(name)) throw new WasmapError('ENOENT', `no switch ${name} in this daemon; it runs: ${this.vale.switchNames().join(', ') || 'none'}`);
    return name;
  }

  private dispatch(verb: string, args: Record<string, unknown>): unknown {
    switch (verb) {
      case 'memory': return this.memory();
      case 'ping': return { pong: true, pid: process.pid, uptimeMs: Date.now() - this.started };
      case 'attach': return this.attach(this.swName(args), this.str(args, 'port', 'port (tap:IF, af_packet:IF, vhost-user:PATH or a virtual port name)'), args);
      case 'detach': return this.detach(this.swName(args), this.str(args, 'port', 'port'));
      case 'list': return this.list(typeof args.switch === 'string' ? this.swName(args) : undefined);
      case 'stats': return this.stats(typeof args.switch === 'string' ? this.swName(args) : undefined);
      case 'newif': { const r = this.vale.newif(this.str(args, 'name', 'port name')); return { name: this.str(args, 'name', ''), slots: r.slots }; }
      case 'delif': this.vale.delif(this.str(args, 'name', 'port name')); return { deleted: args.name };
      case 'pt-open': {
        const sw = this.swName(args);
        const pt = this.ptOpen(sw, this.str(args, 'port', 'port name'), 'process', { slots: args.slots as number | undefined, bufSize: args.bufSize as number | undefined });
        return pt.processInfo();
      }
      case 'pt-close': return this.ptClose(this.swName(args), this.str(args, 'port', 'port'), typeof args.reason === 'string' ? args.reason : 'closed');
      case 'capture': return this.capture(this.swName(args), this.str(args, 'port', 'port'), this.str(args, 'file', 'pcap file path'), Number(args.count ?? 0));
      case 'capture-status': return this.captureStatus(this.swName(args), this.str(args, 'port', 'port'));
      case 'set-lookup': return this.setLookup(this.swName(args), args);
      case 'capture-stop': return this.captureStop(this.swName(args), this.str(args, 'port', 'port'));
      default: throw new WasmapError('EINVAL', `unknown verb '${verb}'; verbs: attach, detach, list, stats, set-lookup, newif, delif, capture, pt-open, pt-close, ping`);
    }
  }

  attach(sw: string, port: string, args: Record<string, unknown> = {}): unknown {
    if (port.startsWith('vhost-user:')) return this.attachVhost(sw, parsePortName(port).name, typeof args.name === 'string' ? args.name : undefined);
    const hdr = args.vnetHdr === undefined ? 0 : Number(args.vnetHdr);
    if (![0, 10, 12].includes(hdr)) throw new WasmapError('EINVAL', `vnet header length must be 0, 10 or 12, not ${String(args.vnetHdr)}`);
    if (port.startsWith('tap:') || port.startsWith('af_packet:')) {
      const spec = parsePortName(port);
      const kind = spec.kind as HostKind;
      const full = `${sw}:${spec.name}`;
      if (this.hostPorts.has(full)) throw new WasmapError('EBUSY', `${port} is already attached to ${sw}`);
      for (const [k, hp] of this.hostPorts) if (hp.ifname === spec.name) throw new WasmapError('EBUSY', `${spec.name} is already attached as ${k}`);
      // the switch port takes the interface's name as it is: a host port is no netmap name, and
      // '-' or '.' in it (rb-v0, eth0.5) are part of the name, not a ring suffix
      const s = this.vale.switch(sw);
      if (s.port(spec.name)) throw new WasmapError('EBUSY', `${full} already exists (another kind of port has that name)`);
      const hp = HostPort.open(this.host(), this.dp, kind, spec.name, hdr, () => s.attach(spec.name));
      if (hdr) this.vale.switch(sw).setHeaderLength(spec.name, hdr);
      if (hdr && typeof args.accept === 'string') this.vale.switch(sw).setAccept(spec.name, args.accept.split(',').filter(Boolean));
      this.hostPorts.set(full, hp);
      return { name: full, kind, ifname: spec.name, index: hp.port.index, vnetHdr: hdr };
    }
    const name = port.includes(':') ? port : `${sw}:${port}`;
    if (!name.startsWith(`${sw}:`)) throw new WasmapError('EINVAL', `port ${port} names another switch than ${sw}`);
    const p = this.vale.attach(name);
    if (hdr) this.vale.switch(sw).setHeaderLength(p.name, hdr);
    return { name, kind: 'virtual', index: p.index, vnetHdr: hdr };
  }

  /** A vhost-user server socket at `path` and a switch port behind it (named `name`, default
   *  the socket file's name without its extension). QEMU connects whenever it likes. */
  attachVhost(sw: string, path: string, name?: string): unknown {
    path = resolve(path);
    const port = name ?? (basename(path).replace(/\.[^.]*$/, '').replace(/[^A-Za-z0-9_.-]/g, '_') || 'vhost');
    const full = `${sw}:${port}`;
    for (const [k, vp] of this.vhostPorts) if (vp.path === path) throw new WasmapError('EBUSY', `${path} is already served by ${k}`);
    const s = this.vale.switch(sw);
    if (s.port(port)) throw new WasmapError('EBUSY', `${full} already exists; name the port with --name`);
    if (!PORT_NAME_RE.test(port) || port.length > 15) {
      throw new WasmapError('EINVAL', `bad port name '${port}'${name === undefined ? ` (from the socket file's name)` : ''}: 1 to 15 letters, digits, '_', '-' or '.'; name the port with --name`);
    }
    // the port name is a plain name here, not a netmap name ('-' is no ring suffix)
    const p = s.attach(port);
    let vp: VhostUserPort;
    try {
      s.setHeaderLength(port, 12); // virtio_net_hdr_v1 on every frame, as the guest's rings carry it
      s.setAccept(port, []);
      vp = new VhostUserPort(this.host(), this.dp, p, path, (acc) => s.setAccept(port, acc));
    } catch (e) {
      s.detach(port);
      const err = e as Error & { code?: string };
      throw new WasmapError(err.code ?? 'EIO', `vhost-user:${path}: ${err.message}`);
    }
    this.vhostPorts.set(full, vp);
    return { name: full, kind: 'vhost-user', path, index: p.index, vnetHdr: 12 };
  }

  /** Install a forwarding function (module bytes in base64) or go back to learning ('default').
   *  Runs between two forwarding passes of this thread: the swap loses and reorders nothing. */
  setLookup(sw: string, args: Record<string, unknown>): unknown {
    const mod = args.module;
    if (typeof mod !== 'string' || !mod) throw new WasmapError('EINVAL', "missing the module ('module': base64 bytes of a .wasm file, or 'default')");
    const fallback = args.fallback === undefined ? undefined : String(args.fallback) as Fallback;
    const s = this.vale.switch(sw);
    if (mod === 'default') return s.setLookup('default');
    const bytes = Buffer.from(mod, 'base64');
    if (!bytes.length) throw new WasmapError('EBADFN', 'the module is empty');
    return s.setLookup(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length), {
      config: args.config, fallback, name: typeof args.name === 'string' ? args.name : undefined,
    });
  }

  private full(sw: string, port: string): string {
    return `${sw}:${port.replace(/^(tap|af_packet):/, '').replace(new RegExp(`^${sw}:`), '')}`;
  }

  capture(sw: string, port: string, file: string, count: number): unknown {
    const full = this.full(sw, port);
    const p = this.portOf(full);
    if (!p) throw new WasmapError('ENOENT', `no port ${full}`);
    if (this.captures.has(full)) throw new WasmapError('EBUSY', `${full} is already being captured`);
    if (this.faults.has(full)) throw new WasmapError('ENETDOWN', `${full} is down: ${this.faults.get(full)!.reason}`);
    if (!Number.isInteger(count) || count < 0) throw new WasmapError('EINVAL', `count must be a whole number ≥ 0, not ${count}`);
    const hdr = this.vale.switch(sw).stats().ports.find((x) => x.name === p.name)?.hdrLen ?? 0;
    try { this.captures.set(full, new PcapWriter(file, count, hdr)); } catch (e) { throw new WasmapError('EIO', `cannot write ${file}: ${(e as Error).message}`); }
    return { port: full, file, count };
  }
  captureStatus(sw: string, port: string): unknown {
    const full = this.full(sw, port), pcap = this.captures.get(full);
    return pcap ? { active: true, frames: pcap.count, badSlots: pcap.badSlots } : { active: false, stopped: this.captureStops.get(full) ?? null };
  }
  captureStop(sw: string, port: string): unknown {
    const full = this.full(sw, port), pcap = this.captures.get(full);
    if (!pcap) throw new WasmapError('ENOENT', `no capture on ${full}`);
    pcap.close(); this.captures.delete(full);
    return { port: full, frames: pcap.count };
  }

  detach(sw: string, port: string): unknown {
    let full = this.full(sw, port);
    if (port.startsWith('vhost-user:')) {
      const path = resolve(port.slice('vhost-user:'.length));
      const hit = [...this.vhostPorts].find(([, vp]) => vp.path === path);
      if (!hit) throw new WasmapError('ENOENT', `no vhost-user port serves ${path}`);
      full = hit[0];
    }
    const vp = this.vhostPorts.get(full);
    if (vp) { vp.close(); this.vhostPorts.delete(full); }
    if (this.ptPorts.has(full)) return this.ptClose(sw, port, 'detached by request');
    const hp = this.hostPorts.get(full);
    const pcap = this.captures.get(full);
    if (pcap) { pcap.close(); this.captures.delete(full); }
    // host and vhost-user ports were attached by their plain names (see attach), virtual ones as valeX:NAME
    const stats = hp || vp ? this.vale.switch(sw).detach(full.slice(sw.length + 1)) : this.vale.detach(full);
    const fault = this.faults.get(full);
    this.faults.delete(full); this.captureStops.delete(full);
    if (hp) { hp.close(); this.hostPorts.delete(full); }
    return { name: full, stats: this.plain(stats), ...(fault ? { fault: fault.reason, faultDrops: fault.drops } : {}) };
  }

  private plain(p: PortStats): Record<string, number | string> {
    const out: Record<string, number | string> = {};
    for (const [k, v] of Object.entries(p)) out[k] = typeof v === 'bigint' ? num(v) : v;
    return out;
  }

  list(only?: string): unknown {
    return this.vale.list().filter((e) => !only || e.switchName === only).map((e) => {
      const hp = this.hostPorts.get(e.name), pt = this.ptPorts.get(e.name);
      if (pt) return { ...e, kind: 'passthrough', mode: pt.mode, down: null, broken: pt.errors.tx || pt.errors.rx ? pt.errors : null };
      const vp = this.vhostPorts.get(e.name);
      const fault = this.faults.get(e.name)?.reason;
      if (vp) return { ...e, kind: 'vhost-user', path: vp.path, connected: vp.connected, sessions: vp.sessions, down: fault ?? vp.down };
      return { ...e, kind: hp?.kind ?? 'virtual', ifname: hp?.ifname, down: fault ?? hp?.down ?? null };
    });
  }

  stats(only?: string): unknown {
    return this.vale.switchNames().filter((n) => !only || n === only).map((n) => {
      const s = this.vale.switch(n).stats();
      return {
        name: n, lookup: this.vale.switch(n).lookupStatus(), guestsGone: this.ptGone.filter((g) => g.name.startsWith(`${n}:`)), rounds: num(s.rounds), frames: num(s.frames), floodExtra: num(s.floodExtra), segExtra: num(s.segExtra), learned: num(s.learned),
        ports: s.ports.map((p) => {
          const hp = this.hostPorts.get(`${n}:${p.name}`), pt = this.ptPorts.get(`${n}:${p.name}`);
          if (pt) return { ...this.plain(p), kind: 'passthrough', mode: pt.mode, down: null, kicksIn: pt.kicksIn, kicksOut: pt.kicksOut, ringErrors: pt.errors };
          const vp = this.vhostPorts.get(`${n}:${p.name}`), fault = this.faults.get(`${n}:${p.name}`);
          const faulted = fault ? { faultDrops: fault.drops } : {};
          if (vp) {
            return { ...this.plain(p), ...faulted, kind: 'vhost-user', path: vp.path, down: fault?.reason ?? vp.down, connected: vp.connected, sessions: vp.sessions,
              refusedConnections: vp.refusedConnections, features: `0x${vp.features.toString(16)}`, downDrops: vp.downDrops, refused: { ...vp.refused }, messages: vp.messages,
              guestMappedBytes: vp.mappedBytes, queues: vp.queueStats(), events: vp.events.slice(-64) };
          }
          return { ...this.plain(p), ...faulted, kind: hp?.kind ?? 'virtual', down: fault?.reason ?? hp?.down ?? null, kernelRx: hp?.rxFrames ?? 0, kernelTx: hp?.txFrames ?? 0, kernelDrops: hp?.kernelDrops ?? 0 };
        }),
      };
    });
  }

  close(): void {
    for (const full of [...this.ptPorts.keys()]) { const i = full.indexOf(':'); this.ptClose(full.slice(0, i), full.slice(i + 1), 'switch stopping'); }
    for (const pcap of this.captures.values()) pcap.close();
    this.captures.clear();
    for (const hp of this.hostPorts.values()) hp.close();
    this.hostPorts.clear();
    for (const vp of this.vhostPorts.values()) vp.close();
    this.vhostPorts.clear();
    this.vale.close();
  }
}

// VALE switches in the control plane: create and destroy, attach and detach ports, list, read
// counters. Each port gets its own region (as VALE ports do); the switch copies between them.
import { Datapath, check } from './datapath.js';
import { WasmapError } from './errors.js';
import { Region, RingView } from './port.js';
import { FnInstance, FnOptions, FnStatus, PreparedFn, compileFn } from './fn/host.js';

export interface PortStats {
  name: string; index: number;
  txPackets: bigint; txBytes: bigint; rxPackets: bigint; rxBytes: bigint;
  dropFull: bigint; dropBroken: bigint; dropNoDst: bigint; dropLookup: bigint; dropSize: bigint; dropHdr: bigint; hdrLen: number;
  txErrors: bigint; lastError: number;
}
export interface SwitchStats {
  name: string; ports: PortStats[]; rounds: bigint; frames: bigint; floodExtra: bigint; segExtra: bigint; learned: bigint;
}

/** A port on a switch: its region and the JS ring views its user works with. */
export class SwitchPort {
  readonly tx: RingView; readonly rx: RingView;
  constructor(readonly sw: Switch, readonly name: string, readonly index: number, readonly region: Region, readonly persistent: boolean) {
    this.tx = region.ring('tx'); this.rx = region.ring('rx');
  }
  /** Queue frames for the next round (no sync: the switch takes them in its round). */
  send(frames: Uint8Array[], flags = 0): number { return this.tx.send(frames, flags); }
  /** Frames delivered so far (consumed: the next round gives their slots back). */
  recv(): Uint8Array[] { return this.rx.recv(); }
}

export interface LookupStatus { mode: 'learning' | 'function' | 'drop'; function: FnStatus | null; previous: FnStatus | null }

export interface AttachOptions { slots?: number; bufSize?: number }

// netmap's [A-Za-z0-9_] plus '-' and '.', which Linux interface names use (tap:veth-a)
const NAME_RE = /^[A-Za-z0-9_.-]+$/;

export class Switch {
  readonly dp: Datapath; readonly name: string; readonly sw: number;
  private readonly size: number;
  private readonly ports = new Map<string, SwitchPort>();
  private destroyed = false;
  private fnInst: FnInstance | null = null;
  private fnLast: FnStatus | null = null; // the function taken out last, as it was then

  constructor(dp: Datapath, name = 'vale0') {
    if (!/^vale[A-Za-z0-9_]*$/.test(name) || name.length > 15) {
      throw new WasmapError('EINVAL', `bad switch name '${name}': it must be 'vale' followed by letters, digits or '_' (at most 15 characters), e.g. vale0`);
    }
    this.dp = dp; this.name = name;
    this.size = dp.fn.sw_priv_size();
    this.sw = dp.alloc(this.size, 64);
    dp.fn.sw_init(this.sw);
  }

  private live(): void {
    if (this.destroyed) throw new WasmapError('ESHUTDOWN', `switch ${this.name} was destroyed`);
  }

  /** Attach a new virtual port `name` (the part after 'valeX:'), or a region you made (newif). */
  attach(name: string, o: AttachOptions & { region?: Region } = {}): SwitchPort {
    this.live();
    if (!NAME_RE.test(name) || name.length > 15) {
      throw new WasmapError('EINVAL', `bad port name '${name}': use letters, digits, '_', '-' and '.' (at most 15 characters)`);
    }
    if (this.ports.has(name)) throw new WasmapError('EBUSY', `port ${this.name}:${name} is already attached`);
    const region = o.region ?? new Region(this.dp, { slots: o.slots ?? 1024, bufSize: o.bufSize, name: `${this.name}:${name}` });
    const idx = this.dp.fn.sw_attach(this.sw, region.kring('tx'), region.kring('rx'));
    if (idx < 0) {
      if (!o.region) region.close();
      throw new WasmapError(this.ports.size >= 254 ? 'ENOSPC' : 'EBUSY',
        this.ports.size >= 254 ? `switch ${this.name} has 254 ports, the maximum` : `port ${name}'s rings are already on a switch`);
    }
    const port = new SwitchPort(this, name, idx, region, !!o.region);
    this.ports.set(name, port);
    return port;
  }

  /** Detach a port; its region is freed unless it was made by the caller (persistent). */
  detach(name: string): PortStats {
    this.live();
    const port = this.ports.get(name);
    if (!port) throw new WasmapError('ENOENT', `no port ${this.name}:${name}; attached ports: ${[...this.ports.keys()].join(', ') || 'none'}`);
    const stats = this.portStats(port);
    check(this.dp.fn.sw_detach(this.sw, port.index), 'sw_detach');
    this.ports.delete(name);
    if (!port.persistent) port.region.close();
    return stats;
  }

  port(name: string): SwitchPort | undefined { return this.ports.get(name); }
  list(): SwitchPort[] { return [...this.ports.values()].sort((a, b) => a.index - b.index); }

  /** Frames of this port carry a virtio-net header of `len` bytes (0, 10 or 12; netmap's PORT_HDR_SET). */
  setHeaderLength(name: string, len: number): void {
    const port = this.ports.get(name);
    if (!port) throw new WasmapError('ENOENT', `no port ${this.name}:${name}`);
    if (len !== 0 && len !== 10 && len !== 12) throw new WasmapError('EINVAL', `virtio-net header length must be 0, 10 or 12, not ${len}`);
    check(this.dp.fn.sw_set_hdr(this.sw, port.index, len), 'sw_set_hdr');
  }

  /** What a port with a header accepts: any of 'csum', 'tso4', 'tso6', 'uso' (default all).
   *  Frames asking for more are segmented / completed by the switch for it. */
  setAccept(name: string, offloads: string[]): void {
    const port = this.ports.get(name);
    if (!port) throw new WasmapError('ENOENT', `no port ${this.name}:${name}`);
    const bits: Record<string, number> = { csum: this.dp.abi.ACCEPT_CSUM, tso4: this.dp.abi.ACCEPT_TSO4, tso6: this.dp.abi.ACCEPT_TSO6, uso: this.dp.abi.ACCEPT_USO };
    let mask = 0;
    for (const o of offloads) {
      if (!(o in bits)) throw new WasmapError('EINVAL', `unknown offload '${o}': use csum, tso4, tso6, uso`);
      mask |= bits[o];
    }
    check(this.dp.fn.sw_set_accept(this.sw, port.index, mask), 'sw_set_accept');
  }

  /**
   * Who decides where this switch's frames go: a forwarding function (a module's bytes, or one
   * compiled by compileFn, e.g. on another thread) or 'default', the built-in learning lookup.
   * The swap happens here, between two rounds: no frame is lost or reordered by it. A module
   * that fails to load or refuses its configuration throws, and the old lookup stays.
   */
  setLookup(fn: Uint8Array | PreparedFn | 'default', opts: FnOptions = {}): LookupStatus {
    this.live();
    if (opts.fallback !== undefined && opts.fallback !== 'drop' && opts.fallback !== 'learning') {
      throw new WasmapError('EINVAL', `fallback must be 'drop' or 'learning', not '${String(opts.fallback)}'`);
    }
    const next = fn === 'default' ? null : new FnInstance(this.dp, this.sw, fn instanceof Uint8Array ? compileFn(fn) : fn, opts);
    if (this.fnInst) { this.fnInst.deactivate('learning'); this.fnLast = this.fnInst.status(); }
    this.fnInst = next;
    if (next) next.activate();
    else this.dp.setU32(this.sw + this.dp.abi.SW_LOOKUP, this.dp.abi.LK_LEARN);
    return this.lookupStatus();
  }

  /** The lookup in use, and the function (active or disabled by a fault) with its counters. */
  lookupStatus(): LookupStatus {
    const a = this.dp.abi, mode = this.dp.u32(this.sw + a.SW_LOOKUP);
    const fn = this.fnInst?.status() ?? null;
    return { mode: mode === a.LK_FN ? 'function' : mode === a.LK_DROP ? 'drop' : 'learning', function: fn, previous: this.fnLast };
  }

  /** One forwarding round; returns frames taken from tx rings. */
  round(now = Math.floor(Date.now() / 1000)): number { this.live(); return this.dp.fn.sw_round(this.sw, now >>> 0); }

  /** Batch bound (1..1024 slots) and MAC age (seconds). */
  configure(o: { batch?: number; ageSeconds?: number }): void {
    const a = this.dp.abi;
    const batch = o.batch ?? this.dp.u32(this.sw + a.SW_BATCH), age = o.ageSeconds ?? this.dp.u32(this.sw + a.SW_AGE);
    if (!Number.isInteger(batch) || batch < 1 || batch > 1024) throw new WasmapError('EINVAL', `batch must be 1..1024 slots, not ${o.batch}`);
    check(this.dp.fn.sw_configure(this.sw, batch, age >>> 0), 'sw_configure');
  }

  private portStats(p: SwitchPort): PortStats {
    const a = this.dp.abi, base = this.dp.u32(this.sw + a.SW_PORTS) + a.PORT_SIZE * p.index;
    const c = (off: number) => this.dp.u64(base + off);
    return {
      name: p.name, index: p.index,
      txPackets: c(a.P_TX_PKTS), txBytes: c(a.P_TX_BYTES), rxPackets: c(a.P_RX_PKTS), rxBytes: c(a.P_RX_BYTES),
      dropFull: c(a.P_DROP_FULL), dropBroken: c(a.P_DROP_BROKEN), dropNoDst: c(a.P_DROP_NODST),
      dropLookup: c(a.P_DROP_LOOKUP), dropSize: c(a.P_DROP_SIZE), dropHdr: c(a.P_DROP_HDR), hdrLen: this.dp.u32(base + a.P_HDR_LEN), txErrors: c(a.P_TX_ERRORS),
      lastError: this.dp.dv.getInt32(base + a.P_LAST_ERR, true),
    };
  }

  stats(): SwitchStats {
    const a = this.dp.abi, c = (off: number) => this.dp.u64(this.sw + off);
    return {
      name: this.name, ports: this.list().map((p) => this.portStats(p)),
      rounds: c(a.SW_ROUNDS), frames: c(a.SW_FRAMES), floodExtra: c(a.SW_FLOOD_EXTRA), segExtra: c(a.SW_SEG_EXTRA), learned: c(a.SW_LEARNED),
    };
  }

  destroy(): void {
    if (this.destroyed) return;
    for (const name of [...this.ports.keys()]) this.detach(name);
    if (this.fnInst) { this.fnInst.deactivate('learning'); this.fnInst = null; }
    this.destroyed = true;
    this.dp.release(this.sw, this.size);
  }
}

/** Drops of every reason, summed over a set of port counters. */
export function totalDrops(ports: PortStats[]): bigint {
  return ports.reduce((n, p) => n + p.dropFull + p.dropBroken + p.dropNoDst + p.dropLookup + p.dropSize + p.dropHdr, 0n);
}

/**
 * The conservation law every test and benchmark checks: every frame taken from a tx ring
 * became a delivery or a counted drop (a flooded frame is one delivery per port reached, a
 * segmented TSO frame one delivery per segment).
 * Counters of ports detached since must be passed in `gone`.
 */
export function conservation(s: SwitchStats, gone: PortStats[] = []): { sent: bigint; received: bigint; drops: bigint; floodExtra: bigint; segExtra: bigint; ok: boolean } {
  const all = [...s.ports, ...gone];
  const sent = all.reduce((n, p) => n + p.txPackets, 0n);
  const received = all.reduce((n, p) => n + p.rxPackets, 0n);
  const drops = totalDrops(all);
  return { sent, received, drops, floodExtra: s.floodExtra, segExtra: s.segExtra, ok: sent + s.floodExtra + s.segExtra === received + drops };
}

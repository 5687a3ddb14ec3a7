// Packet generators and sinks (pkt-gen's engines) as control-plane objects: they parse the
// user's addresses, build the frame template in wasm memory and read the counters back.
import { Datapath, check } from './datapath.js';
import { WasmapError } from './errors.js';

export interface GenOptions {
  len?: number;            // frame length without CRC (42..9216), default 60
  srcMac?: string; dstMac?: string;      // default 02:00:00:00:00:01 -> ff:ff:ff:ff:ff:ff
  src?: string; dst?: string;            // 'IP[-IP][:PORT[-PORT]]', default 10.0.0.1:1234 / 10.1.0.1:1234
  slotFlags?: number;      // flags on every tx slot (e.g. NS_NO_LEARN, or a port in the high byte)
  count?: number;          // frames to send at most (default unlimited)
  rubbish?: boolean;       // pkt-gen -r: set lengths only, never write the frame into buffers
}

export function parseMac(s: string): Uint8Array {
  const m = /^([0-9a-f]{1,2})(?::([0-9a-f]{1,2})){5}$/i.test(s) ? s.split(':').map((x) => parseInt(x, 16)) : null;
  if (!m) throw new WasmapError('EINVAL', `bad MAC address '${s}': write six hex bytes separated by ':', e.g. 02:00:00:00:00:01`);
  return Uint8Array.from(m);
}

function ipToInt(s: string, whole: string): number {
  const p = s.split('.');
  if (p.length !== 4 || p.some((x) => !/^\d{1,3}$/.test(x) || +x > 255)) {
    throw new WasmapError('EINVAL', `bad IPv4 address '${s}' in '${whole}': write e.g. 10.0.0.1 or a range 10.0.0.1-10.0.0.9:1234-1240`);
  }
  return p.reduce((n, x) => n * 256 + +x, 0);
}

/** 'IP[-IP][:PORT[-PORT]]' → inclusive ranges (host order). */
export function parseAddrRange(s: string): { ip: [number, number]; port: [number, number] } {
  const parts = s.split(':');
  if (parts.length > 2 || parts.some((p) => p.split('-').length > 2)) {
    throw new WasmapError('EINVAL', `bad address range '${s}': write IP[-IP][:PORT[-PORT]], e.g. 10.0.0.1-10.0.0.9:1234-1240`);
  }
  const [ips, ports] = parts as [string, string | undefined];
  const [a, b] = ips.split('-');
  const ip: [number, number] = [ipToInt(a, s), ipToInt(b ?? a, s)];
  let port: [number, number] = [1234, 1234];
  if (ports !== undefined) {
    const [p, q] = ports.split('-');
    const pn = Number(p), qn = Number(q ?? p);
    if (!Number.isInteger(pn) || !Number.isInteger(qn) || pn < 0 || qn > 65535 || p === '' ) {
      throw new WasmapError('EINVAL', `bad port range in '${s}': ports are 0..65535, e.g. :1234 or :1234-1240`);
    }
    port = [pn, qn];
  }
  if (ip[0] > ip[1] || port[0] > port[1]) throw new WasmapError('EINVAL', `range '${s}' runs backwards: write the low end first`);
  return { ip, port };
}

export class Generator {
  readonly dp: Datapath; readonly g: number; readonly len: number;
  private readonly size: number;
  constructor(dp: Datapath, o: GenOptions = {}) {
    this.dp = dp;
    this.len = o.len ?? 60;
    if (!Number.isInteger(this.len) || this.len < 42 || this.len > 9216) {
      throw new WasmapError('EINVAL', `frame length ${o.len} is out of range: 42 (Ethernet+IPv4+UDP headers) to 9216`);
    }
    // parse everything first, so a refused generator allocates nothing
    const dmac = parseMac(o.dstMac ?? 'ff:ff:ff:ff:ff:ff'), smac = parseMac(o.srcMac ?? '02:00:00:00:00:01');
    const s = parseAddrRange(o.src ?? '10.0.0.1:1234'), d = parseAddrRange(o.dst ?? '10.1.0.1:1234');
    this.size = dp.fn.gen_size();
    this.g = dp.alloc(this.size, 64);
    const a = dp.abi, t = this.g + a.G_TEMPLATE;
    dp.u8.set(dmac, t);
    dp.u8.set(smac, t + 6);
    if (o.rubbish) dp.setU32(this.g + a.G_FLAGS, a.GF_NOFILL);
    try {
      check(dp.fn.gen_init(this.g, this.len, s.ip[0], s.ip[1], d.ip[0], d.ip[1], s.port[0], s.port[1], d.port[0], d.port[1]), 'gen_init');
    } catch (e) {
      dp.release(this.g, this.size);
      throw e;
    }
    dp.setU16(this.g + a.G_SLOT_FLAGS, o.slotFlags ?? 0);
    if (o.count !== undefined) this.budget = o.count;
  }
  set budget(n: number) { this.dp.dv.setBigUint64(this.g + this.dp.abi.G_BUDGET, BigInt(Math.max(0, Math.floor(n))), true); }
  get budget(): number { return Number(this.dp.u64(this.g + this.dp.abi.G_BUDGET)); }
  /** The frame as it will be sent next (a copy). */
  frame(): Uint8Array { const t = this.g + this.dp.abi.G_TEMPLATE; return this.dp.u8.slice(t, t + this.len); }
  /** Fill up to `max` free slots of a tx ring (by kring); returns frames written. */
  fill(kring: number, max = 1 << 30): number { return this.dp.fn.gen_tx(this.g, kring, max); }
  /** Drain an rx ring (by kring); returns frames consumed. */
  drain(kring: number): number { return this.dp.fn.gen_rx(this.g, kring); }
  get txPackets(): bigint { return this.dp.u64(this.g + this.dp.abi.G_TX_PKTS); }
  get txBytes(): bigint { return this.dp.u64(this.g + this.dp.abi.G_TX_BYTES); }
  get rxPackets(): bigint { return this.dp.u64(this.g + this.dp.abi.G_RX_PKTS); }
  get rxBytes(): bigint { return this.dp.u64(this.g + this.dp.abi.G_RX_BYTES); }
  close(): void { this.dp.release(this.g, this.size); }
}

/** A traffic plan for traffic_run: generators feeding tx rings, sinks draining rx rings. */
export class TrafficPlan {
  readonly dp: Datapath; readonly plan: number;
  private readonly size: number;
  constructor(dp: Datapath, sw: number, gens: { gen: Generator; kring: number; burst: number }[], sinks: { gen: Generator; kring: number }[]) {
    if (gens.length + sinks.length > 2 * 254) throw new WasmapError('EINVAL', 'a traffic plan holds at most 254 generators and 254 sinks');
    this.dp = dp; this.size = dp.fn.plan_size(); this.plan = dp.alloc(this.size, 64);
    dp.setU32(this.plan, sw); dp.setU32(this.plan + 4, gens.length); dp.setU32(this.plan + 8, sinks.length);
    let e = this.plan + 16;
    for (const g of gens) { dp.setU32(e, g.gen.g); dp.setU32(e + 4, g.kring); dp.setU32(e + 8, g.burst); e += 16; }
    for (const s of sinks) { dp.setU32(e, s.gen.g); dp.setU32(e + 4, s.kring); e += 16; }
  }
  /** Run rounds in wasm; returns frames the sinks received. */
  run(rounds: number, now = Math.floor(Date.now() / 1000)): number { return Number(this.dp.fn.traffic_run(this.plan, rounds, now >>> 0)); }
  close(): void { this.dp.release(this.plan, this.size); }
}

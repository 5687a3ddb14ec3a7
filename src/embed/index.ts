// wasmap for any JavaScript host (browsers, Deno, Node, workers): no Node built-ins. Creates
// the shared memory and the instance, hands out spans, and gives a small switch API whose
// ports are pushed and pulled in batches — the embedder's code is the rings' user.
export interface Embedded {
  memory: WebAssembly.Memory;
  module: WebAssembly.Module;
  fn: Record<string, (...a: number[]) => number>;
  abi: Record<string, number>;
  /** a zeroed span of memory (never freed: embedders create ports once) */
  alloc(bytes: number, align?: number): number;
}

function wrap(memory: WebAssembly.Memory, module: WebAssembly.Module, instance: WebAssembly.Instance, top: number | null): Embedded {
  const fn: Record<string, (...a: number[]) => number> = {}, abi: Record<string, number> = {};
  for (const [k, v] of Object.entries(instance.exports)) {
    if (v instanceof WebAssembly.Global) abi[k] = Number(v.value);
    else if (typeof v === 'function') fn[k] = v as (...a: number[]) => number;
  }
  let next = top ?? (Math.ceil(fn.heap_base() / 65536) + 1) * 65536;
  return {
    memory, module, fn, abi,
    alloc(bytes: number, align = 64): number {
      const at = Math.ceil(next / align) * align, end = at + Math.ceil(bytes / 64) * 64;
      const have = memory.buffer.byteLength;
      if (end > have) memory.grow(Math.ceil((end - have) / 65536));
      new Uint8Array(memory.buffer).fill(0, at, end);
      next = end;
      return at;
    },
  };
}

// Embedded switches use the built-in learning lookup; forwarding functions need the Node runner
// (src/fn/host.ts), so the hook says "no function" (the switch would then fall back).
const imports = (memory: WebAssembly.Memory) => ({ env: { memory }, wasmap: { fn_lookup: () => -1 } });

/** Compile and instantiate build/wasmap.wasm (bytes, a fetch Response or its promise). */
export async function instantiate(source: BufferSource | Response | Promise<Response>, maxPages = 4096): Promise<Embedded> {
  const memory = new WebAssembly.Memory({ initial: 64, maximum: maxPages, shared: true });
  const src = await source;
  const module = src instanceof Response ? await WebAssembly.compileStreaming(src) : await WebAssembly.compile(src);
  const instance = await WebAssembly.instantiate(module, imports(memory));
  return wrap(memory, module, instance, null);
}

/** Another instance over the same memory (a worker's view): it must not allocate. */
export async function join(module: WebAssembly.Module, memory: WebAssembly.Memory): Promise<Embedded> {
  const instance = await WebAssembly.instantiate(module, imports(memory));
  const e = wrap(memory, module, instance, 0);
  e.alloc = () => { throw new Error('wasmap: only the instance that created the memory allocates'); };
  return e;
}

export interface PortRef { index: number; txKring: number; rxKring: number }

const u32 = (e: Embedded, at: number) => new DataView(e.memory.buffer).getUint32(at, true);

/** A VALE switch inside an embedded instance. */
export class EmbeddedSwitch {
  readonly sw: number;
  constructor(readonly e: Embedded) {
    this.sw = e.alloc(e.fn.sw_priv_size(), 64);
    e.fn.sw_init(this.sw);
  }
  addPort(slots = 256, bufSize = 2048): PortRef {
    const f = this.e.fn, size = f.region_span_size(1, 1, slots, bufSize, 0);
    if (!size) throw new Error(`wasmap: bad port geometry (${slots} slots of ${bufSize} bytes)`);
    const base = this.e.alloc(size, 65536), desc = this.e.alloc(f.region_priv_size(1, 1, slots, 0), 64);
    if (f.region_init(desc, base, size, 1, 1, slots, bufSize, 0) !== 0) throw new Error('wasmap: region_init failed');
    const txKring = f.region_kring(desc, 0, 0), rxKring = f.region_kring(desc, 1, 0);
    const index = f.sw_attach(this.sw, txKring, rxKring);
    if (index < 0) throw new Error('wasmap: the switch is full (254 ports)');
    return { index, txKring, rxKring };
  }
  /** One forwarding round; returns frames taken from tx rings. */
  round(now = Math.floor(Date.now() / 1000)): number { return this.e.fn.sw_round(this.sw, now); }
  /** Port counters: tx, rx and every drop. */
  stats(port: PortRef): Record<string, number> {
    const a = this.e.abi, base = u32(this.e, this.sw + a.SW_PORTS) + a.PORT_SIZE * port.index, dv = new DataView(this.e.memory.buffer);
    const c = (o: number) => Number(dv.getBigUint64(base + o, true));
    return { tx: c(a.P_TX_PKTS), rx: c(a.P_RX_PKTS), drops: c(a.P_DROP_FULL) + c(a.P_DROP_BROKEN) + c(a.P_DROP_NODST) + c(a.P_DROP_LOOKUP) + c(a.P_DROP_SIZE) + c(a.P_DROP_HDR) };
  }
  get floodExtra(): number { return Number(new DataView(this.e.memory.buffer).getBigUint64(this.sw + this.e.abi.SW_FLOOD_EXTRA, true)); }
}

function ringOf(e: Embedded, kring: number) {
  const a = e.abi, ring = u32(e, kring + a.KR_RING);
  return { a, ring, n: u32(e, kring + a.KR_NSLOTS), base: u32(e, kring + a.KR_BUF_BASE), bsize: u32(e, kring + a.KR_BUF_SIZE) };
}

/** As the user of a tx ring: write frames (each ≤ one buffer) from head, advance head and cur. */
export function pushFrames(e: Embedded, txKring: number, frames: Uint8Array[]): number {
  const { a, ring, n, base, bsize } = ringOf(e, txKring), dv = new DataView(e.memory.buffer), u8 = new Uint8Array(e.memory.buffer);
  let head = dv.getUint32(ring + a.RING_HEAD, true);
  const tail = dv.getUint32(ring + a.RING_TAIL, true);
  let room = (tail - head + n) % n, sent = 0;
  for (const f of frames) {
    if (room === 0 || f.length > bsize) break;
    const slot = ring + a.RING_SLOTS + a.SLOT_SIZE * head;
    u8.set(f, base + dv.getUint32(slot, true) * bsize);
    dv.setUint16(slot + 4, f.length, true); dv.setUint16(slot + 6, 0, true);
    head = head + 1 === n ? 0 : head + 1; room--; sent++;
  }
  dv.setUint32(ring + a.RING_HEAD, head, true); dv.setUint32(ring + a.RING_CUR, head, true);
  return sent;
}

/** As the user of an rx ring: copy out the frames in [head, tail) and release them. */
export function pullFrames(e: Embedded, rxKring: number): Uint8Array[] {
  const { a, ring, n, base, bsize } = ringOf(e, rxKring), dv = new DataView(e.memory.buffer), u8 = new Uint8Array(e.memory.buffer);
  let head = dv.getUint32(ring + a.RING_HEAD, true);
  const tail = dv.getUint32(ring + a.RING_TAIL, true), out: Uint8Array[] = [];
  while (head !== tail) {
    const slot = ring + a.RING_SLOTS + a.SLOT_SIZE * head, at = base + dv.getUint32(slot, true) * bsize;
    out.push(u8.slice(at, at + dv.getUint16(slot + 4, true)));
    head = head + 1 === n ? 0 : head + 1;
  }
  dv.setUint32(ring + a.RING_HEAD, head, true); dv.setUint32(ring + a.RING_CUR, head, true);
  return out;
}

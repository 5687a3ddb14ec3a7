// A fake QEMU for the vhost-user tests: the front-end side of the protocol and a guest
// virtio-net driver's side of the virtqueues, in TypeScript, in the test's own process. No
// QEMU and no guest kernel: the tests run in seconds and can write exactly the rings (and the
// broken rings) they want.
//
// Guest RAM is a memfd mapped into a WebAssembly.Memory of the test's own (not the switch's:
// the back-end must reach the guest only through what SET_MEM_TABLE gives it). Its layout, in
// guest-physical addresses (gpa), copies QEMU's PC machine: a low region 0–640K, a hole (the
// VGA window) 640K–768K, and a high region 768K–end. The memfd has guard bytes (0xEE) that no
// region covers — 64K before gpa 0, the hole, 64K after the end — so a back-end writing
// anywhere but the regions QEMU described shows up in guardDamage().
//
// Everything here is synchronous, in one thread, like the forwarding loop: a message is sent,
// the caller's `pump` (runner.vhostService) runs the back-end, then the reply is read. The
// numbers (requests, flags, feature bits, ring layouts) are restated from the specs rather
// than imported from src/, so a wrong constant in the back-end cannot hide in both places.
import { ftruncateSync } from 'node:fs';
import type { NativeHost } from '../../src/host.js';

// ---- the vhost-user protocol (https://qemu-project.gitlab.io/qemu/interop/vhost-user.html) --

export const REQ = {
  GET_FEATURES: 1, SET_FEATURES: 2, SET_OWNER: 3, RESET_OWNER: 4, SET_MEM_TABLE: 5, SET_LOG_BASE: 6, SET_LOG_FD: 7,
  SET_VRING_NUM: 8, SET_VRING_ADDR: 9, SET_VRING_BASE: 10, GET_VRING_BASE: 11, SET_VRING_KICK: 12, SET_VRING_CALL: 13,
  SET_VRING_ERR: 14, GET_PROTOCOL_FEATURES: 15, SET_PROTOCOL_FEATURES: 16, GET_QUEUE_NUM: 17, SET_VRING_ENABLE: 18,
} as const;
/** Header flags: version 1 in bits 0–1, then reply and need_reply. */
export const FLAG = { VERSION: 0x1, REPLY: 0x4, NEED_REPLY: 0x8 } as const;
export const HDR = 12;

/** virtio feature bits (virtio spec 5.1.3 and 6; PROTOCOL_FEATURES is vhost-user's bit 30). */
export const FEAT = {
  CSUM: 1n << 0n, GUEST_CSUM: 1n << 1n, GUEST_TSO4: 1n << 7n, GUEST_TSO6: 1n << 8n, HOST_TSO4: 1n << 11n, HOST_TSO6: 1n << 12n,
  MRG_RXBUF: 1n << 15n, INDIRECT_DESC: 1n << 28n, EVENT_IDX: 1n << 29n, PROTOCOL_FEATURES: 1n << 30n, VERSION_1: 1n << 32n,
} as const;
export const PROTO_REPLY_ACK = 1n << 3n;
/** What the tests' guest asks for by default: a modern device, mergeable buffers, EVENT_IDX. */
export const GUEST_FEATURES = FEAT.VERSION_1 | FEAT.MRG_RXBUF | FEAT.EVENT_IDX | FEAT.PROTOCOL_FEATURES | FEAT.INDIRECT_DESC | FEAT.CSUM | FEAT.GUEST_CSUM;

/** A whole message: header then payload (the 12-byte layout of the spec's "Message Specification"). */
export function message(req: number, payload: Uint8Array = new Uint8Array(0), flags: number = FLAG.VERSION, size = payload.length): Buffer {
  const b = Buffer.alloc(HDR + payload.length);
  b.writeUInt32LE(req, 0); b.writeUInt32LE(flags, 4); b.writeUInt32LE(size, 8);
  b.set(payload, HDR);
  return b;
}
export function u64(v: bigint): Buffer { const b = Buffer.alloc(8); b.writeBigUInt64LE(v); return b; }
/** struct vhost_vring_state: u32 index, u32 num (NUM, BASE, ENABLE and GET_VRING_BASE's reply). */
export function vringState(index: number, num: number): Buffer { const b = Buffer.alloc(8); b.writeUInt32LE(index, 0); b.writeUInt32LE(num, 4); return b; }
/** struct vhost_vring_addr: index, flags, then desc, used, avail, log — QEMU's user addresses. */
export function vringAddr(index: number, desc: bigint, used: bigint, avail: bigint, log = 0n, flags = 0): Buffer {
  const b = Buffer.alloc(40);
  b.writeUInt32LE(index, 0); b.writeUInt32LE(flags, 4);
  b.writeBigUInt64LE(desc, 8); b.writeBigUInt64LE(used, 16); b.writeBigUInt64LE(avail, 24); b.writeBigUInt64LE(log, 32);
  return b;
}
export interface MemRegion { gpa: bigint; size: bigint; uva: bigint; mmapOffset: bigint }
/** VHOST_USER_SET_MEM_TABLE's payload: u32 nregions, u32 padding, 32 bytes per region. */
export function memTable(regions: MemRegion[], count = regions.length): Buffer {
  const b = Buffer.alloc(8 + 32 * regions.length);
  b.writeUInt32LE(count, 0);
  regions.forEach((r, i) => {
    b.writeBigUInt64LE(r.gpa, 8 + 32 * i); b.writeBigUInt64LE(r.size, 16 + 32 * i);
    b.writeBigUInt64LE(r.uva, 24 + 32 * i); b.writeBigUInt64LE(r.mmapOffset, 32 + 32 * i);
  });
  return b;
}
/** SET_VRING_KICK / CALL / ERR payload: the queue index, bit 8 when no fd comes with it. */
export const vringFile = (index: number, noFd = false): Buffer => u64(BigInt(index) | (noFd ? 0x100n : 0n));

export interface Msg { req: number; flags: number; payload: Buffer; fds: number[] }

/**
 * One front-end connection. send() writes a message; recv() reads the next whole message the
 * back-end wrote (a recvmsg may carry more or less than one); call() does both around a pump
 * of the back-end, as QEMU's synchronous requests do.
 */
export class Frontend {
  readonly sock: number;
  private inbuf = Buffer.alloc(0);
  private infds: number[] = [];
  /** The back-end closed the connection (a recvmsg returned 0 bytes). */
  eof = false;
  /** Whether to set need_reply on requests without a reply of their own (after REPLY_ACK). */
  replyAck = false;
  private closed = false;

  constructor(readonly host: NativeHost, readonly path: string, readonly pump: () => void) {
    this.sock = host.unixConnect(path);
  }

  send(req: number, payload: Uint8Array = new Uint8Array(0), fds: number[] = [], flags: number = FLAG.VERSION): void {
    this.host.sendFds(this.sock, message(req, payload, flags), fds);
  }
  /** Raw bytes: broken headers, a message split over two writes. */
  sendRaw(bytes: Uint8Array, fds: number[] = []): void { this.host.sendFds(this.sock, bytes, fds); }

  /** The next message from the back-end, waiting up to timeoutMs; null when none (or EOF). */
  recv(timeoutMs = 0): Msg | null {
    const until = Date.now() + timeoutMs;
    for (;;) {
      if (this.inbuf.length >= HDR) {
        const size = this.inbuf.readUInt32LE(8);
        if (this.inbuf.length >= HDR + size) {
          const m = { req: this.inbuf.readUInt32LE(0), flags: this.inbuf.readUInt32LE(4), payload: Buffer.from(this.inbuf.subarray(HDR, HDR + size)), fds: this.infds };
          this.inbuf = this.inbuf.subarray(HDR + size);
          this.infds = [];
          return m;
        }
      }
      if (this.eof) return null;
      const r = this.host.recvFds(this.sock, 65536, Math.max(0, until - Date.now()));
      if (!r) return null;
      this.infds.push(...r.fds);
      if (r.data.length === 0) { this.eof = true; return null; }
      this.inbuf = Buffer.concat([this.inbuf, r.data]);
    }
  }

  /** Did the back-end close the socket? Reads (and discards) whatever it still had to say. */
  closedByPeer(timeoutMs = 0): boolean {
    while (!this.eof && this.recv(timeoutMs)) { /* drain */ }
    return this.eof;
  }

  /**
   * A request QEMU would send and then wait on: GET_* get their reply; any other request
   * with `ack` (and REPLY_ACK negotiated) carries need_reply and gets u64 0 for success.
   * Returns the reply's payload, or null for a request that expects none.
   */
  call(req: number, payload: Uint8Array = new Uint8Array(0), fds: number[] = [], o: { ack?: boolean; pump?: boolean } = {}): Buffer | null {
    const getter = req === REQ.GET_FEATURES || req === REQ.GET_PROTOCOL_FEATURES || req === REQ.GET_VRING_BASE || req === REQ.GET_QUEUE_NUM;
    const ack = !getter && (o.ack ?? this.replyAck);
    this.send(req, payload, fds, FLAG.VERSION | (ack ? FLAG.NEED_REPLY : 0));
    if (o.pump !== false) this.pump();
    if (!getter && !ack) return null;
    const m = this.recv(1000);
    if (!m) throw new Error(`no reply to request ${req}${this.eof ? ': the back-end closed the connection' : ''}`);
    if (m.req !== req) throw new Error(`reply to request ${m.req} while waiting for ${req}`);
    if (m.flags !== (FLAG.VERSION | FLAG.REPLY)) throw new Error(`reply flags 0x${m.flags.toString(16)}, expected 0x5 (version 1, reply)`);
    if (ack) {
      if (m.payload.length !== 8) throw new Error(`REPLY_ACK of request ${req}: ${m.payload.length} bytes, expected 8`);
      if (m.payload.readBigUInt64LE(0) !== 0n) throw new Error(`request ${req} failed: REPLY_ACK ${m.payload.readBigUInt64LE(0)}`);
    }
    return m.payload;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const fd of this.infds) this.host.closeFd(fd);
    this.host.closeFd(this.sock);
  }
}

// ---- guest RAM -----------------------------------------------------------------------------

export const KiB = 1024, MiB = 1024 * 1024;
const GUARD = 64 * KiB; // memfd bytes before gpa 0 and after the end that no region covers
const MAP_AT = 65536; // where the memfd is mapped in the test's own memory (page-aligned)
export const LOW = { gpa: 0, size: 640 * KiB }; // QEMU's PC layout: 0–640K, the hole, 768K–end
export const HIGH_GPA = 768 * KiB;
export const HOLE = { gpa: 640 * KiB, size: 128 * KiB };
const UVA_LOW = 0x7f0000000000n; // QEMU's virtual addresses: not the gpa plus one constant, so a
const UVA_HIGH = 0x7f4000000000n; //  back-end mixing up gpa, uva or regions translates wrongly

/**
 * How the guest RAM memfd is made, as QEMU's backends make it: 'plain' = memory-backend-memfd
 * with seal=off (no MFD_ALLOW_SEALING: it cannot be sealed, like a file on /dev/shm or
 * hugetlbfs), 'sealable' = MFD_ALLOW_SEALING and no seals yet, 'sealed' = QEMU's default
 * (seal=on: F_SEAL_GROW|SHRINK|SEAL).
 */
export type MemfdKind = 'plain' | 'sealable' | 'sealed';

/** Guest RAM: a memfd mapped into the test's own shared WebAssembly.Memory. */
export class GuestRam {
  readonly fd: number;
  readonly mem: WebAssembly.Memory;
  readonly u8: Uint8Array;
  readonly dv: DataView;
  readonly memfdLen: number;
  private closed = false;

  constructor(readonly host: NativeHost, readonly size = 4 * MiB, name = 'wasmap-test-guest', kind: MemfdKind = 'plain') {
    this.memfdLen = GUARD + size + GUARD;
    const pages = Math.ceil((MAP_AT + this.memfdLen) / 65536);
    this.mem = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
    this.fd = host.memfdCreate(name, this.memfdLen, kind === 'sealed' ? true : kind === 'sealable' ? 'allow' : false);
    try {
      this.u8 = new Uint8Array(this.mem.buffer);
      host.mapFd(this.u8, MAP_AT, this.memfdLen, this.fd, 0);
      // the guest's own view survives its truncate() too: a touch past the end reads zeros
      // (the test process would die of SIGBUS otherwise, whatever the switch does)
      if (kind !== 'sealed') host.fence(this.u8, MAP_AT, this.memfdLen);
    } catch (e) { host.closeFd(this.fd); throw e; }
    this.dv = new DataView(this.mem.buffer);
    for (const [at, len] of this.guards()) this.u8.fill(0xee, at, at + len);
  }

  /** Index in u8 / dv of guest-physical address gpa. */
  at(gpa: number): number { return MAP_AT + GUARD + gpa; }
  /** QEMU's user address of gpa (ring addresses in SET_VRING_ADDR are these). */
  uva(gpa: number): bigint {
    if (gpa >= LOW.gpa && gpa < LOW.gpa + LOW.size) return UVA_LOW + BigInt(gpa - LOW.gpa);
    if (gpa >= HIGH_GPA && gpa < this.size) return UVA_HIGH + BigInt(gpa - HIGH_GPA);
    throw new Error(`test bug: gpa 0x${gpa.toString(16)} is in no region`);
  }
  /** The two regions, as SET_MEM_TABLE describes them (mmap offsets into the memfd). */
  regions(): MemRegion[] {
    return [
      { gpa: BigInt(LOW.gpa), size: BigInt(LOW.size), uva: UVA_LOW, mmapOffset: BigInt(GUARD + LOW.gpa) },
      { gpa: BigInt(HIGH_GPA), size: BigInt(this.size - HIGH_GPA), uva: UVA_HIGH, mmapOffset: BigInt(GUARD + HIGH_GPA) },
    ];
  }
  private guards(): [number, number][] {
    return [[MAP_AT, GUARD], [this.at(HOLE.gpa), HOLE.size], [this.at(this.size), GUARD]];
  }
  /** A virtqueue descriptor (u64 addr, u32 len, u16 flags, u16 next) at gpa: ring tables and indirect tables alike. */
  writeDesc(gpa: number, addr: number | bigint, len: number, flags: number, next = 0): void {
    const at = this.at(gpa), dv = this.dv;
    dv.setBigUint64(at, BigInt(addr), true); dv.setUint32(at + 8, len, true); dv.setUint16(at + 12, flags, true); dv.setUint16(at + 14, next, true);
  }
  /** null while every guard byte is 0xEE, else where the first changed one is. */
  guardDamage(): string | null {
    for (const [at, len] of this.guards()) {
      for (let i = at; i < at + len; i++) if (this.u8[i] !== 0xee) return `guard byte at memfd offset 0x${(i - MAP_AT).toString(16)} is 0x${this.u8[i].toString(16)}`;
    }
    return null;
  }
  /** ftruncate the memfd to `bytes` (a hostile front-end shrinking guest RAM under the back-end). */
  truncate(bytes: number): void { ftruncateSync(this.fd, bytes); }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.host.unmap(this.u8, MAP_AT, this.memfdLen); // fresh pages over the span: the memfd can go
    this.host.closeFd(this.fd);
  }
}

// ---- split virtqueues (virtio spec 2.7) --------------------------------------------------------
//   descriptor: u64 addr, u32 len, u16 flags, u16 next               (16 bytes, table of num)
//   avail:      u16 flags, u16 idx, u16 ring[num], u16 used_event
//   used:       u16 flags, u16 idx, {u32 id, u32 len}[num], u16 avail_event
export const DESC_NEXT = 1, DESC_WRITE = 2, DESC_INDIRECT = 4;
export const NET_HDR = 12; // virtio_net_hdr_v1; num_buffers is its u16 at offset 10

export interface QueueLayout { desc: number; avail: number; used: number; buf: (i: number) => number; bufSize: number; ind?: (i: number) => number }

/** A virtqueue as the guest driver sees it: descriptors, buffers and both rings in guest RAM. */
export class VirtQueue {
  /** The driver's next avail slot (published as avail->idx by publish()). */
  nextAvail = 0;
  /** Used entries the driver has read so far. */
  lastUsed = 0;
  private free: number[] = [];
  private chains = new Map<number, number[]>();

  constructor(readonly ram: GuestRam, readonly index: number, readonly num: number, readonly l: QueueLayout) { this.reset(); }

  /** A fresh queue: rings zeroed, every descriptor free, both indices at `base`. */
  reset(base = 0): void {
    const { u8 } = this.ram;
    u8.fill(0, this.ram.at(this.l.desc), this.ram.at(this.l.desc) + 16 * this.num);
    u8.fill(0, this.ram.at(this.l.avail), this.ram.at(this.l.avail) + 6 + 2 * this.num);
    u8.fill(0, this.ram.at(this.l.used), this.ram.at(this.l.used) + 6 + 8 * this.num);
    this.nextAvail = this.lastUsed = base;
    this.w16(this.l.avail + 2, base);
    this.w16(this.l.used + 2, base);
    this.free = Array.from({ length: this.num }, (_, i) => i);
    this.chains.clear();
  }

  private w16(gpa: number, v: number): void { this.ram.dv.setUint16(this.ram.at(gpa), v & 0xffff, true); }
  private r16(gpa: number): number { return this.ram.dv.getUint16(this.ram.at(gpa), true); }

  /** Write descriptor i (any values: the malformed-chain tests write nonsense on purpose). */
  desc(i: number, addr: number | bigint, len: number, flags: number, next = 0): void { this.ram.writeDesc(this.l.desc + 16 * i, addr, len, flags, next); }
  /** Put a chain head in the next avail slot (not yet visible: publish()). */
  offer(head: number): void {
    this.w16(this.l.avail + 4 + 2 * (this.nextAvail % this.num), head);
    this.nextAvail = (this.nextAvail + 1) & 0xffff;
  }
  /** avail->idx = what was offered: the device may now take it. */
  publish(): void { this.w16(this.l.avail + 2, this.nextAvail); }

  get availIdx(): number { return this.r16(this.l.avail + 2); }
  get usedIdx(): number { return this.r16(this.l.used + 2); }
  get usedFlags(): number { return this.r16(this.l.used); }
  /** The device's "kick me when avail->idx passes this" (EVENT_IDX), after the used ring. */
  get availEvent(): number { return this.r16(this.l.used + 4 + 8 * this.num); }
  set availEvent(v: number) { this.w16(this.l.used + 4 + 8 * this.num, v); }
  /** The driver's "interrupt me when used->idx passes this" (EVENT_IDX), after the avail ring. */
  set usedEvent(v: number) { this.w16(this.l.avail + 4 + 2 * this.num, v); }
  set availFlags(v: number) { this.w16(this.l.avail, v); }
  used(k: number): { id: number; len: number } {
    const at = this.ram.at(this.l.used + 4 + 8 * (k % this.num));
    return { id: this.ram.dv.getUint32(at, true), len: this.ram.dv.getUint32(at + 4, true) };
  }
  /** Used entries not read yet. */
  get pendingUsed(): number { return (this.usedIdx - this.lastUsed) & 0xffff; }
  get freeDescs(): number { return this.free.length; }

  private take(): number {
    const d = this.free.shift();
    if (d === undefined) throw new Error(`test bug: queue ${this.index} has no free descriptor`);
    return d;
  }

  /**
   * TX: one frame (virtio-net header included) as a chain of device-readable descriptors:
   * one, or with `split` the header alone and the rest in a second (as Linux sends when the
   * header does not share the frame's buffer). Buffer i lives at l.buf(i). Returns the head.
   */
  addTx(bytes: Uint8Array, split = false): number {
    const parts = split ? [bytes.subarray(0, NET_HDR), bytes.subarray(NET_HDR)] : [bytes];
    const ids = parts.map(() => this.take());
    parts.forEach((p, k) => {
      if (p.length > this.l.bufSize) throw new Error(`test bug: ${p.length} bytes in a ${this.l.bufSize}-byte buffer`);
      this.ram.u8.set(p, this.ram.at(this.l.buf(ids[k])));
      this.desc(ids[k], this.l.buf(ids[k]), p.length, k < parts.length - 1 ? DESC_NEXT : 0, k < parts.length - 1 ? ids[k + 1] : 0);
    });
    this.chains.set(ids[0], ids);
    this.offer(ids[0]);
    return ids[0];
  }

  /**
   * TX through an indirect table (INDIRECT_DESC): one descriptor in the ring pointing at a
   * two-entry table (header, then the frame) at l.ind(head), both in buffer `head`.
   */
  addTxIndirect(bytes: Uint8Array): number {
    if (!this.l.ind) throw new Error('test bug: this queue has no place for indirect tables');
    const d = this.take(), buf = this.l.buf(d), tab = this.l.ind(d);
    this.ram.u8.set(bytes, this.ram.at(buf));
    this.ram.writeDesc(tab, buf, NET_HDR, DESC_NEXT, 1);
    this.ram.writeDesc(tab + 16, buf + NET_HDR, bytes.length - NET_HDR, 0, 0);
    this.desc(d, tab, 32, DESC_INDIRECT);
    this.chains.set(d, [d]);
    this.offer(d);
    return d;
  }

  /** RX: `count` device-writable buffers of `size` bytes, each its own chain. */
  addRx(count: number, size = this.l.bufSize): number[] {
    const heads: number[] = [];
    for (let k = 0; k < count; k++) {
      const d = this.take();
      this.ram.u8.fill(0x5a, this.ram.at(this.l.buf(d)), this.ram.at(this.l.buf(d)) + size); // stale bytes: a short write shows
      this.desc(d, this.l.buf(d), size, DESC_WRITE);
      this.chains.set(d, [d]);
      this.offer(d);
      heads.push(d);
    }
    return heads;
  }

  /** TX completions: the used entries since the last call; their descriptors are free again. */
  reclaim(): { id: number; len: number }[] {
    const out: { id: number; len: number }[] = [];
    while (this.pendingUsed > 0) {
      const e = this.used(this.lastUsed);
      this.lastUsed = (this.lastUsed + 1) & 0xffff;
      out.push(e);
      this.release(e.id);
    }
    this.usedEvent = this.lastUsed; // as Linux re-enabling callbacks: interrupt me on the next one
    return out;
  }
  private release(id: number): void {
    const c = this.chains.get(id);
    if (!c) throw new Error(`test bug or back-end bug: used id ${id} is not a chain the driver offered`);
    this.chains.delete(id);
    this.free.push(...c);
  }

  /**
   * RX: the frames the device wrote, as virtio-net with MRG_RXBUF reads them: the first
   * buffer's header says how many used entries (num_buffers) make the frame. Returns each
   * frame without its header, the header, and the buffers it took.
   */
  receive(): { frame: Uint8Array; hdr: Uint8Array; buffers: number; lens: number[] }[] {
    const out: { frame: Uint8Array; hdr: Uint8Array; buffers: number; lens: number[] }[] = [];
    while (this.pendingUsed > 0) {
      const first = this.used(this.lastUsed);
      const at = this.ram.at(this.l.buf(first.id));
      const nb = this.ram.dv.getUint16(at + 10, true);
      if (nb < 1 || nb > this.pendingUsed) throw new Error(`num_buffers ${nb} with ${this.pendingUsed} used entries pending`);
      const parts: Uint8Array[] = [], lens: number[] = [];
      for (let k = 0; k < nb; k++) {
        const e = this.used(this.lastUsed);
        this.lastUsed = (this.lastUsed + 1) & 0xffff;
        const b = this.ram.at(this.l.buf(e.id));
        parts.push(this.ram.u8.slice(b, b + e.len));
        lens.push(e.len);
        this.release(e.id);
      }
      const all = Buffer.concat(parts);
      out.push({ hdr: all.subarray(0, NET_HDR), frame: all.subarray(NET_HDR), buffers: nb, lens });
    }
    this.usedEvent = this.lastUsed;
    return out;
  }
}

// ---- the whole fake QEMU: guest RAM, two queues, eventfds, a connection ----------------------

// Where the tests' guest keeps its rings and buffers (gpa). TX (queue 1) has its rings in the
// low region, its buffers alternating between both regions (so a two-descriptor chain usually
// spans both) and its indirect tables at 0x300000; RX (queue 0) lives in the high region.
// 0x340000– is free for the tests.
export const LAYOUT = {
  tx: { desc: 0x1000, avail: 0x2000, used: 0x3000, buf: (i: number) => (i & 1 ? 0x200000 : 0x10000) + i * 2048, bufSize: 2048, ind: (i: number) => 0x300000 + i * 64 },
  rx: { desc: 0xc1000, avail: 0xc2000, used: 0xc3000, buf: (i: number) => 0x100000 + i * 2048, bufSize: 2048 },
  spare: 0x340000,
} as const;
export const QSIZE = 256;

export interface GuestOptions { features?: bigint; protocolFeatures?: bigint; num?: number; name?: string; memfd?: MemfdKind }

export class FakeQemu {
  readonly ram: GuestRam;
  readonly rx: VirtQueue; // queue 0: frames to the guest
  readonly tx: VirtQueue; // queue 1: frames from the guest
  conn: Frontend | null = null;
  /** Per queue: the guest's ends of the eventfds (kick: guest → back-end, call: back-end → guest). */
  kick: number[] = [-1, -1];
  call: number[] = [-1, -1];
  offered = 0n;
  offeredProtocol = 0n;
  features = 0n;

  constructor(readonly host: NativeHost, readonly path: string, readonly pump: () => void, readonly o: GuestOptions = {}) {
    this.ram = new GuestRam(host, 4 * MiB, o.name, o.memfd);
    const num = o.num ?? QSIZE;
    this.rx = new VirtQueue(this.ram, 0, num, LAYOUT.rx);
    this.tx = new VirtQueue(this.ram, 1, num, LAYOUT.tx);
  }

  get q(): Frontend {
    if (!this.conn) throw new Error('test bug: not connected');
    return this.conn;
  }
  queue(i: number): VirtQueue { return i === 0 ? this.rx : this.tx; }

  connect(): Frontend {
    this.conn = new Frontend(this.host, this.path, this.pump);
    return this.conn;
  }

  /** Feature negotiation as QEMU's vhost_user_backend_init and vhost_dev_start do it. */
  negotiate(): void {
    const q = this.q;
    this.offered = q.call(REQ.GET_FEATURES)!.readBigUInt64LE(0);
    const proto = this.o.protocolFeatures ?? PROTO_REPLY_ACK;
    if (this.offered & FEAT.PROTOCOL_FEATURES) {
      this.offeredProtocol = q.call(REQ.GET_PROTOCOL_FEATURES)!.readBigUInt64LE(0);
      q.call(REQ.SET_PROTOCOL_FEATURES, u64(proto & this.offeredProtocol));
      q.replyAck = ((proto & this.offeredProtocol) & PROTO_REPLY_ACK) !== 0n;
    }
    q.call(REQ.SET_OWNER);
    this.features = (this.o.features ?? GUEST_FEATURES) & this.offered;
    q.call(REQ.SET_FEATURES, u64(this.features));
  }

  /** SET_MEM_TABLE with both regions, one fd each (QEMU sends one per region, here the same memfd twice). */
  setMemTable(): void { this.q.call(REQ.SET_MEM_TABLE, memTable(this.ram.regions()), this.ram.regions().map(() => this.ram.fd)); }

  /**
   * Start queue i as vhost_virtqueue_start does: NUM, BASE, ADDR, KICK, CALL, then ENABLE.
   * New eventfds each time (the old ones are closed: the back-end holds its own copies).
   * `pumpEach` false sends the first five back to back and runs the back-end once, as a
   * QEMU that does not wait for acks leaves them in the socket together.
   */
  startQueue(i: number, base = 0, o: { enable?: boolean; pumpEach?: boolean } = {}): void {
    const q = this.q, vq = this.queue(i), r = this.ram;
    const pump = o.pumpEach !== false;
    for (const k of [this.kick, this.call]) { if (k[i] >= 0) this.host.closeFd(k[i]); k[i] = this.host.eventfdCreate(); }
    const ack = pump ? undefined : false;
    q.call(REQ.SET_VRING_NUM, vringState(i, vq.num), [], { ack, pump });
    q.call(REQ.SET_VRING_BASE, vringState(i, base), [], { ack, pump });
    q.call(REQ.SET_VRING_ADDR, vringAddr(i, r.uva(vq.l.desc), r.uva(vq.l.used), r.uva(vq.l.avail)), [], { ack, pump });
    q.call(REQ.SET_VRING_KICK, vringFile(i), [this.kick[i]], { ack, pump });
    q.call(REQ.SET_VRING_CALL, vringFile(i), [this.call[i]], { ack, pump });
    if (!pump) this.pump();
    if (o.enable !== false) q.call(REQ.SET_VRING_ENABLE, vringState(i, 1));
  }

  /** Connect and bring the device up: features, memory, both queues (fresh rings), enabled. */
  start(o: { pumpEach?: boolean } = {}): void {
    this.connect();
    this.negotiate();
    this.setMemTable();
    this.rx.reset(); this.tx.reset();
    this.startQueue(0, 0, o);
    this.startQueue(1, 0, o);
  }

  /** One TX frame per entry (each gets a zero virtio-net header), published at once; `how`
   *  picks one descriptor, two (header apart) or an indirect table per frame. */
  sendFrames(frames: Uint8Array[], how: (k: number) => boolean | 'indirect' = () => false): void {
    frames.forEach((f, k) => {
      const b = new Uint8Array(NET_HDR + f.length);
      b.set(f, NET_HDR);
      const h = how(k);
      if (h === 'indirect') this.tx.addTxIndirect(b); else this.tx.addTx(b, h);
    });
    this.tx.publish();
  }

  /** Signals the back-end sent on queue i's call eventfd since the last look. */
  calls(i: number): number { return this.call[i] >= 0 ? this.host.eventfdDrain(this.call[i]) : 0; }

  /** Close the connection and the guest's eventfds (QEMU going away); guest RAM stays. */
  disconnect(): void {
    this.conn?.close();
    this.conn = null;
    for (const k of [this.kick, this.call]) for (let i = 0; i < 2; i++) if (k[i] >= 0) { this.host.closeFd(k[i]); k[i] = -1; }
  }

  close(): void {
    this.disconnect();
    this.ram.close();
  }
}

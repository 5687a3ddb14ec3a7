// Port mirroring into a pcap file (netmap's copy monitors, as tcpdump reads them): frames a
// port sends into the switch and frames the switch delivers to it. Costs nothing while no
// capture is active: the runner only looks at rings for ports that have one.
//
// A port's rings may belong to a passthrough guest that rewrites them at any time, so nothing
// here believes the ring: the slot range comes from the kring (switch-private: what the round
// took or delivered), each slot's buffer index, length and flags are read once, and the buffer
// is checked against the region's own buffer count and size from the kring. A lying slot can
// at worst show bytes of the guest's own buffers, never another port's.
import { openSync, writeSync, closeSync } from 'node:fs';
import type { Datapath } from '../datapath.js';

export class PcapWriter {
  private readonly fd: number;
  count = 0;
  /** Slots whose buffer index or length was out of range when read (their frame is left out). */
  badSlots = 0;
  constructor(readonly path: string, readonly max: number, private readonly hdrLen: number) {
    this.fd = openSync(path, 'w', 0o600);
    const h = Buffer.alloc(24);
    h.writeUInt32LE(0xa1b2c3d4, 0); h.writeUInt16LE(2, 4); h.writeUInt16LE(4, 6);
    h.writeUInt32LE(262144, 16); h.writeUInt32LE(1, 20); // snaplen, LINKTYPE_ETHERNET
    try { writeSync(this.fd, h); } catch (e) { closeSync(this.fd); throw e; }
  }
  get done(): boolean { return this.max > 0 && this.count >= this.max; }

  /** Record the whole frames in slots [from, to) of the ring behind kring `k`; `from` and `to`
   *  must come from the kring (hwcur / hwtail), never from the ring's own head/cur/tail. */
  frames(dp: Datapath, k: number, from: number, to: number): void {
    const a = dp.abi;
    const n = dp.u32(k + a.KR_NSLOTS), ring = dp.u32(k + a.KR_RING);
    const base = dp.u32(k + a.KR_BUF_BASE), bsize = dp.u32(k + a.KR_BUF_SIZE), nbufs = dp.u32(k + a.KR_NBUFS), ptrs = dp.u32(k + a.KR_PTRS);
    if (from >= n || to >= n) return;
    const MORE = a.NS_MOREFRAG, u8 = dp.u8, RES = a.BUF_RESERVED, MAXF = a.NETMAP_MAX_FRAGS;
    let parts: Uint8Array[] = [], nfr = 0, bad = false;
    for (let i = from; i !== to && !this.done; i = i + 1 === n ? 0 : i + 1) {
      const s = ring + a.RING_SLOTS + a.SLOT_SIZE * i;
      const idx = dp.u32(s + a.SLOT_BUF_IDX), len = dp.u16(s + a.SLOT_LEN), flags = dp.u16(s + a.SLOT_FLAGS); // each read once
      nfr++;
      // a zero-copy slot of a vhost-user port (abi.ts KR_PTRS) has its bytes in guest memory
      // (a received one up to the guest buffer's length: at most a slot's 65535)
      const zc = ptrs && (flags & a.NS_INDIRECT) ? dp.u32(ptrs + a.VQ_PTR_SIZE * i) : 0;
      if (idx < RES || idx >= nbufs || (!zc && len > bsize)) bad = true;
      if (!bad) parts.push(zc ? u8.slice(zc, zc + len) : u8.slice(base + idx * bsize, base + idx * bsize + len)); // a copy: the guest may rewrite it
      if (flags & MORE) { if (nfr >= MAXF) bad = true; continue; } // longer than netmap allows: not a frame
      if (bad) this.badSlots += nfr;
      else this.write(Buffer.concat(parts).subarray(this.hdrLen));
      parts = []; nfr = 0; bad = false;
    }
  }

  private write(frame: Uint8Array): void {
    const now = Date.now();
    const rec = Buffer.alloc(16);
    rec.writeUInt32LE(Math.floor(now / 1000), 0); rec.writeUInt32LE((now % 1000) * 1000, 4);
    rec.writeUInt32LE(frame.length, 8); rec.writeUInt32LE(frame.length, 12);
    writeSync(this.fd, Buffer.concat([rec, frame]));
    this.count++;
  }

  close(): void { try { closeSync(this.fd); } catch { /* already closed */ } }
}

// Port mirroring into a pcap file (netmap's copy monitors, as tcpdump reads them): frames a
// port sends into the switch and frames the switch delivers to it. Costs nothing while no
// capture is active: the runner only looks at rings for ports that have one.
import { openSync, writeSync, closeSync } from 'node:fs';
import { RingView } from '../port.js';

export class PcapWriter {
  private readonly fd: number;
  count = 0;
  constructor(readonly path: string, readonly max: number, private readonly hdrLen: number) {
    this.fd = openSync(path, 'w', 0o600);
    const h = Buffer.alloc(24);
    h.writeUInt32LE(0xa1b2c3d4, 0); h.writeUInt16LE(2, 4); h.writeUInt16LE(4, 6);
    h.writeUInt32LE(262144, 16); h.writeUInt32LE(1, 20); // snaplen, LINKTYPE_ETHERNET
    writeSync(this.fd, h);
  }
  get done(): boolean { return this.max > 0 && this.count >= this.max; }

  /** Record the whole frames in slots [from, to) of a ring. */
  frames(ring: RingView, from: number, to: number): void {
    const MORE = ring.dp.abi.NS_MOREFRAG;
    if (from >= ring.numSlots || to >= ring.numSlots) return; // a user broke this ring: nothing to trust
    let parts: Uint8Array[] = [];
    for (let i = from; i !== to && !this.done; i = ring.next(i)) {
      parts.push(ring.buf(i).subarray(0, ring.len(i)));
      if (ring.flags(i) & MORE) continue;
      this.write(Buffer.concat(parts).subarray(this.hdrLen));
      parts = [];
    }
  }

  private write(frame: Uint8Array): void {
    const now = Date.now();
    const rec = Buffer.alloc(16);
    rec.writeUInt32LE(Math.floor(now / 1000), 0); rec.writeUInt32LE((now % 1000) * 1000, 4);
    rec.writeUInt32LE(frame.length, 8); rec.writeUInt32LE(frame.length, 12);
    writeSync(this.fd, rec); writeSync(this.fd, frame);
    this.count++;
  }

  close(): void { closeSync(this.fd); }
}

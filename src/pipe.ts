// A netmap pipe: two ends in one region, each with a tx and an rx ring; what one end sends
// the other receives, zero-copy (buffer indices are swapped, never bytes copied).
import { Datapath, check } from './datapath.js';
import { Region, RingView } from './port.js';

export class PipeEnd {
  readonly tx: RingView; readonly rx: RingView;
  constructor(private readonly dp: Datapath, tx: RingView, rx: RingView) { this.tx = tx; this.rx = rx; }
  /** Move whole packets to the peer; returns packets moved (0 when the peer is full). */
  txsync(): number { return check(this.dp.fn.pipe_txsync(this.tx.kring), 'pipe txsync'); }
  /** Release what was read, see what arrived; returns readable slots. */
  rxsync(): number { return check(this.dp.fn.rxsync(this.rx.kring), 'pipe rxsync'); }
  send(frames: Uint8Array[]): number { const n = this.tx.send(frames); this.txsync(); return n; }
  recv(): Uint8Array[] { this.rxsync(); const f = this.rx.recv(); this.rxsync(); return f; }
}

export class Pipe {
  readonly region: Region;
  /** The '{' (master) and '}' (slave) ends. */
  readonly master: PipeEnd; readonly slave: PipeEnd;
  constructor(dp: Datapath, o: { slots?: number; bufSize?: number; name?: string } = {}) {
    this.region = new Region(dp, { txRings: 2, rxRings: 2, slots: o.slots ?? 1024, bufSize: o.bufSize, name: o.name });
    const r = this.region;
    check(dp.fn.pipe_link(r.kring('tx', 0), r.kring('rx', 1)), 'pipe_link');
    check(dp.fn.pipe_link(r.kring('tx', 1), r.kring('rx', 0)), 'pipe_link');
    this.master = new PipeEnd(dp, r.ring('tx', 0), r.ring('rx', 0));
    this.slave = new PipeEnd(dp, r.ring('tx', 1), r.ring('rx', 1));
  }
  close(): void { this.region.close(); }
}

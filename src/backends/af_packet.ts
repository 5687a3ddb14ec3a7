// AF_PACKET ports (`af_packet:IF`): a packet socket on an existing interface, joined to the
// switch port of the same name. The kernel's TPACKET_V2 rings are mapped into the wasm memory
// and the datapath copies frames in place (no system call per frame; one send() kicks a whole
// batch out). Fast by default, as TAP ports: the socket carries the virtio-net header, so a veth
// keeps TSO/GSO and checksum offload end to end (64 KiB frames with partial checksums cross
// whole) and the port carries a 12-byte header unless `--vnet-hdr 0|10` says otherwise; with 0
// the datapath completes checksums and segments GSO frames before the switch sees them, so a
// peer with its default offloads works either way.
import type { NativeHost } from '../host.js';
import type { Datapath } from '../datapath.js';
import type { SwitchPort } from '../switch.js';
import { WasmapError } from '../errors.js';
import type { AttachContext, Fields, Verdict } from './backend.js';
import { KernelPort, attachKernel } from './kernel.js';

// Ring geometry. With the header (10, 12) a frame holds a 64 KiB GSO frame with its header and
// the kernel's offsets (tp_mac is 76 with the header): 17 pages, 15 to a block (the kernel
// allocates 256 pages for each 255-page block); rx 120 frames, tx 60: 12 MiB of the memory (and
// of the kernel's) per port. Without one (`--vnet-hdr 0`: frames up to the MTU, peers with
// offloads off) those big frames cost a fifth of the throughput (2.85 → 2.3 Gbit/s: 8 times
// fewer frames in the rx ring, 34 times the memory), so it keeps 2 KiB frames, 1024 each way
// (4 MiB), and a frame larger than a ring frame (a GSO frame from a peer with offloads on, a
// jumbo frame) comes whole through the socket: the kernel marks it TP_STATUS_COPY in the ring
// (PACKET_COPY_THRESH) and we read it with recv into a copy area of CB_K buffers.
interface Geometry { frameSize: number; rxFrames: number; txFrames: number; copy: boolean }
const LARGE: Geometry = { frameSize: 17 * 4096, rxFrames: 120, txFrames: 60, copy: false };
const SMALL: Geometry = { frameSize: 2048, rxFrames: 1024, txFrames: 1024, copy: true };
const geometry = (hdr: number): Geometry => hdr ? LARGE : SMALL;
// a copy buffer holds a 64 KiB GSO frame (gso_max_size) with its 10-byte header; past it (BIG
// TCP) recv says it was cut and the frame is counted
const CB_SIZE = 17 * 4096;
const CB_K = 8;
// Frames of this many bytes or more (TSO frames) leave through a send-only socket, one sendmsg
// each straight from the port's buffers (one copy, by the kernel), instead of the tx ring (our
// copy into the ring, and on a veth the kernel's copy of the ring's pages again). Frames too big
// for a small ring's frame (with the socket's 10-byte header) go that way too.
const BIG = 16384;
/** The header an AF_PACKET port carries when the attach names none (as TAP_DEFAULT_HDR). */
export const AF_PACKET_DEFAULT_HDR = 12;

interface PacketRing { span: number; bytes: number; rx: number; tx: number; rxFrames: number; txFrames: number; frameSize: number; stRx: number; stTx: number; scratch: number; scratchBytes: number; copy: number; copyBytes: number; bigAt: number }

export class AfPacketPort extends KernelPort {
  readonly kind = 'af_packet' as const;
  // TPACKET tx frames the kernel refused are counted by tpk_push at offset 16 of its state, rx
  // frames too big for a buffer (or truncated, or whose copy recv cut) by tpk_pull at offset 16
  // of its own; frames the kernel dropped because our rx ring was full, by the kernel
  // (PACKET_STATISTICS). Frames taken through the copy path: tpk_pull's state at offset 64
  get kernelDrops(): number { return (this.dropsAtClose ?? Number(this.dp.u64(this.ring.stTx + 16)) + Number(this.dp.u64(this.ring.stRx + 16))) + this.ringOverruns + this.bigRefused[0]; }
  /** Big frames the send-only socket refused (a header the kernel rejects, link down). */
  private readonly bigRefused = new Float64Array(1);
  /** The send-only socket for big frames (-1: none, the kernel cannot take the header's length). */
  private txFd = -1;
  /** Big frames wait: the socket was full, or the tx ring has frames before them still unsent. */
  private bigWaits = false;
  private dropsAtClose: number | null = null; // the count when the state records went back
  private copiedAtClose: number | null = null;
  /** Frames larger than a ring frame taken whole from the socket (TP_STATUS_COPY). */
  get copyFrames(): number { return this.copiedAtClose ?? Number(this.dp.u64(this.ring.stRx + 64)); }
  /** Frames the kernel dropped before we saw them: the rx ring was full (tp_drops). */
  ringOverruns = 0;

  /** Add the kernel's drop count since the last read (reading resets it; a u32 in the kernel,
   *  so it is read whenever the loop sleeps and at every stats request). */
  private readOverruns(): void {
    if (this.fd < 0) return;
    const n = this.host.packetDrops(this.fd);
    if (n > 0) this.ringOverruns += n;
  }

  sleepFds(fds: number[]): Verdict {
    this.readOverruns();
    const v = super.sleepFds(fds);
    return (this.unsent || this.bigWaits) && !this.down ? 'nap' : v;
  }

  stats(): Fields {
    this.readOverruns();
    return { ...super.stats(), ringOverruns: this.ringOverruns, copyFrames: this.copyFrames, ringFrameSize: this.ring.frameSize };
  }

  /** The kernel stopped short of the last frame queued (its send buffer was full): kick again
   *  at the next push, and nap instead of sleeping so that it happens. */
  private unsent = false;

  private constructor(host: NativeHost, dp: Datapath, ifname: string, port: SwitchPort, fd: number,
                      private readonly ring: PacketRing, private readonly hdr: number) {
    super(host, dp, ifname, port, fd);
  }

  static open(host: NativeHost, dp: Datapath, ifname: string, hdrLen: number, attach: () => SwitchPort): AfPacketPort {
    let fd: number, ring: PacketRing;
    const g = geometry(hdrLen);
    const bytes = (g.rxFrames + g.txFrames) * g.frameSize;
    const span = dp.alloc(bytes, 65536);
    // a port without a header converts (completes checksums, segments) in a scratch area, for
    // the largest frame it takes (a ring frame or a copy buffer)
    const scratchBytes = hdrLen ? 0 : dp.fn.tpk_scratch_size(Math.max(g.frameSize, g.copy ? CB_SIZE : 0));
    const scratch = scratchBytes ? dp.alloc(scratchBytes, 64) : 0;
    const copyBytes = g.copy ? dp.fn.tpk_copy_bytes(CB_SIZE, CB_K) : 0;
    const copy = copyBytes ? dp.alloc(copyBytes, 64, false) : 0;
    const freeScratch = () => { if (scratch) dp.release(scratch, scratchBytes); if (copy) dp.release(copy, copyBytes); };
    try {
      const r = host.packetRingOpen(ifname, dp.u8, span, g.rxFrames, g.txFrames, g.frameSize, g.copy);
      fd = r.fd;
      const size = dp.abi.TPK_SIZE;
      ring = { span, bytes, rx: r.rx, tx: r.tx, rxFrames: r.rxFrames, txFrames: r.txFrames, frameSize: r.frameSize, stRx: dp.alloc(size), stTx: dp.alloc(size), scratch, scratchBytes, copy, copyBytes,
        bigAt: Math.min(BIG, r.frameSize - 32 - 10 + 1) }; // tx data at 32, behind the socket's 10-byte header
      if (copy) dp.fn.tpk_copy_setup(ring.stRx, copy, CB_SIZE, CB_K);
    } catch (e) {
      dp.release(span, bytes);
      freeScratch();
      const err = e as Error & { code?: string };
      throw new WasmapError(err.code ?? 'EIO', `af_packet:${ifname}: ${err.message}`);
    }
    let txFd = -1;
    try {
      txFd = host.packetTxOpen(ifname, hdrLen); // < 0: the kernel is older than 6.2 (12-byte headers): all through the ring
      const p = new AfPacketPort(host, dp, ifname, attach(), fd, ring, hdrLen);
      p.txFd = txFd;
      return p;
    } catch (e) {
      if (txFd >= 0) host.closeFd(txFd);
      host.unmap(dp.u8, ring.span, ring.bytes); dp.release(ring.span, ring.bytes);
      freeScratch();
      dp.release(ring.stRx, dp.abi.TPK_SIZE); dp.release(ring.stTx, dp.abi.TPK_SIZE);
      host.closeFd(fd);
      throw e;
    }
  }

  /** Kernel → tx ring. Returns frames moved (0 when down or nothing waiting). Frames the kernel
   *  marked TP_STATUS_COPY are received from the socket (CB_K at a time) when tpk_pull reaches
   *  them, then taken in ring order. */
  pull(max = 256): number {
    if (this.down) return 0;
    const r = this.ring;
    let moved = 0;
    for (let round = 0; round < 64 && moved < max; round++) {
      moved += this.dp.fn.tpk_pull(r.stRx, r.rx, r.rxFrames, r.frameSize, this.port.tx.kring, max - moved, this.hdr, r.scratch);
      const want = r.copy ? this.dp.fn.tpk_want(r.stRx) : 0;
      if (want === 0) break;
      const got = this.host.packetRecv(this.fd, this.dp.u8, r.copy, r.copy + 64, CB_SIZE, want);
      if (got < 0) { this.fail('read', got); break; }
      this.dp.fn.tpk_copies(r.stRx, got);
    }
    this.rxFrames += moved;
    return moved;
  }

  /** rx ring → kernel: small frames through the tx ring (one send() kicks the batch out), big
   *  ones with a sendmsg each, in the order they came. Returns frames moved. */
  push(): number {
    if (this.down) return 0;
    let moved = 0;
    this.bigWaits = false;
    for (let round = 0; round < 64; round++) {
      const n = this.dp.fn.tpk_push(this.ring.stTx, this.port.rx.kring, this.ring.tx, this.ring.txFrames, this.ring.frameSize, this.hdr, this.txFd >= 0 ? this.ring.bigAt : 0);
      if (n > 0 || this.unsent) {
        const rc = this.host.packetKick(this.fd);
        if (rc < 0) { this.fail('send', rc); return moved; }
        this.unsent = this.dp.fn.tpk_unsent(this.ring.stTx, this.ring.tx, this.ring.txFrames, this.ring.frameSize) !== 0;
      }
      moved += n;
      if (!this.dp.fn.tpk_big(this.ring.stTx)) break;
      // big frames next: only once everything before them has left (the kernel keeps the order)
      if (this.unsent) { this.bigWaits = true; break; }
      const before = this.bigRefused[0];
      const m = this.host.ringToFd(this.dp.u8, this.port.rx.ring, this.txFd, true, this.bigRefused, this.ring.bigAt);
      if (m < 0) { this.fail('send', m); return moved; }
      this.txFrames -= this.bigRefused[0] - before; // counted as drops instead
      moved += m;
      if (m === 0) { this.bigWaits = true; break; } // its send buffer is full: the next pass
    }
    this.txFrames += moved;
    return moved;
  }

  protected release(): void {
    this.readOverruns(); // the fd is still open here
    if (this.txFd >= 0) { try { this.host.closeFd(this.txFd); } catch { /* already gone */ } this.txFd = -1; }
    try { this.host.unmap(this.dp.u8, this.ring.span, this.ring.bytes); } catch { /* memory already gone */ }
    this.dp.release(this.ring.span, this.ring.bytes);
    this.dropsAtClose = Number(this.dp.u64(this.ring.stTx + 16)) + Number(this.dp.u64(this.ring.stRx + 16)); // a port listed down still shows them
    this.copiedAtClose = Number(this.dp.u64(this.ring.stRx + 64));
    this.dp.release(this.ring.stRx, this.dp.abi.TPK_SIZE); this.dp.release(this.ring.stTx, this.dp.abi.TPK_SIZE);
    if (this.ring.scratch) this.dp.release(this.ring.scratch, this.ring.scratchBytes);
    if (this.ring.copy) this.dp.release(this.ring.copy, this.ring.copyBytes);
  }
}

export const openAfPacket = (c: AttachContext): AfPacketPort => attachKernel(c, (ifname, hdr, attach) => AfPacketPort.open(c.host, c.dp, ifname, hdr, attach), AF_PACKET_DEFAULT_HDR);

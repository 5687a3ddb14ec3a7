// Host ports: a kernel endpoint (a TAP device or an AF_PACKET socket on an existing interface)
// joined to a switch port. Batches move between the kernel and the port's rings, the host
// acting as the rings' user: for TAP, one native call per batch (readv/writev per frame); for
// AF_PACKET, the kernel's TPACKET_V2 rings are mapped into the wasm memory and the datapath
// copies frames in place (no system call per frame; one send() kicks a whole batch out).
// A failing endpoint takes the port down with a reason; the switch and other ports go on.
import { NativeHost } from '../host.js';
import { Datapath } from '../datapath.js';
import { SwitchPort } from '../switch.js';
import { WasmapError } from '../errors.js';

export type HostKind = 'tap' | 'af_packet';
const RING_FRAMES = 1024; // per direction, 2048 bytes each: 4 MiB of the memory per AF_PACKET port

interface PacketRing { span: number; bytes: number; rx: number; tx: number; frames: number; frameSize: number; stRx: number; stTx: number }

export class HostPort {
  readonly kind: HostKind; readonly ifname: string; readonly port: SwitchPort; fd: number;
  down: string | null = null;
  rxFrames = 0; txFrames = 0; // frames read from / written to the kernel
  private readonly refused = new Float64Array(1); // frames the kernel refused (link down, too big)
  // TPACKET tx frames the kernel refused are counted by tpk_push at offset 16 of its state, rx
  // frames too big for a buffer (or truncated) by tpk_pull at offset 16 of its own
  /** Frames read from the kernel longer than the slots one read may take: dropped whole, never cut. */
  private readonly tooLong = new Float64Array(1);
  get kernelDrops(): number { return this.refused[0] + this.tooLong[0] + (this.ring ? Number(this.dp.u64(this.ring.stTx + 16)) + Number(this.dp.u64(this.ring.stRx + 16)) : 0); }

  private constructor(private readonly host: NativeHost, private readonly dp: Datapath, kind: HostKind, ifname: string,
                      port: SwitchPort, fd: number, private readonly ring: PacketRing | null) {
    this.kind = kind; this.ifname = ifname; this.port = port; this.fd = fd;
  }

  static open(host: NativeHost, dp: Datapath, kind: HostKind, ifname: string, hdrLen: number, attach: () => SwitchPort): HostPort {
    if (kind === 'af_packet' && hdrLen) throw new WasmapError('EINVAL', `af_packet:${ifname}: AF_PACKET ports carry no virtio-net header yet (offloads come with the offload work); attach without --vnet-hdr`);
    let fd: number, ring: PacketRing | null = null;
    const bytes = 2 * RING_FRAMES * 2048;
    const span = kind === 'af_packet' ? dp.alloc(bytes, 65536) : -1;
    try {
      if (kind === 'tap') fd = host.tapOpen(ifname, hdrLen).fd;
      else {
        const r = host.packetRingOpen(ifname, dp.u8, span, RING_FRAMES);
        fd = r.fd;
        const size = dp.abi.TPK_SIZE;
        ring = { span, bytes, rx: r.rx, tx: r.tx, frames: r.frames, frameSize: r.frameSize, stRx: dp.alloc(size), stTx: dp.alloc(size) };
      }
    } catch (e) {
      if (span >= 0) dp.release(span, bytes);
      const err = e as Error & { code?: string };
      throw new WasmapError(err.code ?? 'EIO', `${kind}:${ifname}: ${err.message}`);
    }
    try {
      return new HostPort(host, dp, kind, ifname, attach(), fd, ring);
    } catch (e) {
      if (ring) { host.unmap(dp.u8, ring.span, ring.bytes); dp.release(ring.span, ring.bytes); }
      host.closeFd(fd);
      throw e;
    }
  }

  /** Kernel → tx ring. Returns frames moved (0 when down or nothing waiting). */
  pull(view: Uint8Array, max = 256): number {
    if (this.down) return 0;
    let n: number;
    if (this.ring) n = this.dp.fn.tpk_pull(this.ring.stRx, this.ring.rx, this.ring.frames, this.ring.frameSize, this.port.tx.kring, max);
    else n = this.host.fdToRing(view, this.port.tx.ring, this.fd, false, max, this.tooLong);
    if (n < 0) { this.fail('read', n); return 0; }
    this.rxFrames += n;
    return n;
  }

  /** rx ring → kernel. Returns frames moved. */
  push(view: Uint8Array): number {
    if (this.down) return 0;
    if (this.ring) {
      const n = this.dp.fn.tpk_push(this.ring.stTx, this.port.rx.kring, this.ring.tx, this.ring.frames, this.ring.frameSize);
      if (n > 0) {
        const rc = this.host.packetKick(this.fd);
        if (rc < 0) { this.fail('send', rc); return 0; }
      }
      this.txFrames += n;
      return n;
    }
    const before = this.refused[0];
    const n = this.host.ringToFd(view, this.port.rx.ring, this.fd, false, this.refused);
    if (n < 0) { this.fail('write', n); return 0; }
    this.txFrames += n - (this.refused[0] - before);
    return n;
  }

  private fail(op: string, errno: number): void {
    const names: Record<number, string> = { 5: 'EIO', 19: 'ENODEV', 77: 'EBADFD', 100: 'ENETDOWN', 6: 'ENXIO', 9: 'EBADF' };
    this.down = `${op} on ${this.kind}:${this.ifname} failed: ${names[-errno] ?? `errno ${-errno}`} (interface gone or down)`;
  }

  close(): void {
    if (this.fd < 0) return;
    if (this.ring) {
      try { this.host.unmap(this.dp.u8, this.ring.span, this.ring.bytes); } catch { /* memory already gone */ }
      this.dp.release(this.ring.span, this.ring.bytes);
      this.dp.release(this.ring.stRx, this.dp.abi.TPK_SIZE); this.dp.release(this.ring.stTx, this.dp.abi.TPK_SIZE);
    }
    try { this.host.closeFd(this.fd); } catch { /* already gone */ }
    this.fd = -1;
  }
}

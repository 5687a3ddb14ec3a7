// AF_PACKET ports (`af_packet:IF`): a packet socket on an existing interface, joined to the
// switch port of the same name. The kernel's TPACKET_V2 rings are mapped into the wasm memory
// and the datapath copies frames in place (no system call per frame; one send() kicks a whole
// batch out).
import type { NativeHost } from '../host.js';
import type { Datapath } from '../datapath.js';
import type { SwitchPort } from '../switch.js';
import { WasmapError } from '../errors.js';
import type { AttachContext, Fields } from './backend.js';
import { KernelPort, attachKernel } from './kernel.js';

const RING_FRAMES = 1024; // per direction, 2048 bytes each: 4 MiB of the memory per AF_PACKET port

interface PacketRing { span: number; bytes: number; rx: number; tx: number; frames: number; frameSize: number; stRx: number; stTx: number }

export class AfPacketPort extends KernelPort {
  readonly kind = 'af_packet' as const;
  // TPACKET tx frames the kernel refused are counted by tpk_push at offset 16 of its state, rx
  // frames too big for a buffer (or truncated) by tpk_pull at offset 16 of its own; frames the
  // kernel dropped because our rx ring was full, by the kernel (PACKET_STATISTICS)
  get kernelDrops(): number { return (this.dropsAtClose ?? Number(this.dp.u64(this.ring.stTx + 16)) + Number(this.dp.u64(this.ring.stRx + 16))) + this.ringOverruns; }
  private dropsAtClose: number | null = null; // the count when the state records went back
  /** Frames the kernel dropped before we saw them: the rx ring was full (tp_drops). */
  ringOverruns = 0;

  /** Add the kernel's drop count since the last read (reading resets it; a u32 in the kernel,
   *  so it is read whenever the loop sleeps and at every stats request). */
  private readOverruns(): void {
    if (this.fd < 0) return;
    const n = this.host.packetDrops(this.fd);
    if (n > 0) this.ringOverruns += n;
  }

  sleepFds(fds: number[]): 'sleep' {
    this.readOverruns();
    return super.sleepFds(fds) as 'sleep';
  }

  stats(): Fields {
    this.readOverruns();
    return { ...super.stats(), ringOverruns: this.ringOverruns };
  }

  private constructor(host: NativeHost, dp: Datapath, ifname: string, port: SwitchPort, fd: number, private readonly ring: PacketRing) {
    super(host, dp, ifname, port, fd);
  }

  static open(host: NativeHost, dp: Datapath, ifname: string, hdrLen: number, attach: () => SwitchPort): AfPacketPort {
    if (hdrLen) throw new WasmapError('EINVAL', `af_packet:${ifname}: AF_PACKET ports carry no virtio-net header yet (offloads come with the offload work); attach without --vnet-hdr`);
    let fd: number, ring: PacketRing;
    const bytes = 2 * RING_FRAMES * 2048;
    const span = dp.alloc(bytes, 65536);
    try {
      const r = host.packetRingOpen(ifname, dp.u8, span, RING_FRAMES);
      fd = r.fd;
      const size = dp.abi.TPK_SIZE;
      ring = { span, bytes, rx: r.rx, tx: r.tx, frames: r.frames, frameSize: r.frameSize, stRx: dp.alloc(size), stTx: dp.alloc(size) };
    } catch (e) {
      dp.release(span, bytes);
      const err = e as Error & { code?: string };
      throw new WasmapError(err.code ?? 'EIO', `af_packet:${ifname}: ${err.message}`);
    }
    try {
      return new AfPacketPort(host, dp, ifname, attach(), fd, ring);
    } catch (e) {
      host.unmap(dp.u8, ring.span, ring.bytes); dp.release(ring.span, ring.bytes);
      host.closeFd(fd);
      throw e;
    }
  }

  /** Kernel → tx ring. Returns frames moved (0 when down or nothing waiting). */
  pull(max = 256): number {
    if (this.down) return 0;
    const n = this.dp.fn.tpk_pull(this.ring.stRx, this.ring.rx, this.ring.frames, this.ring.frameSize, this.port.tx.kring, max);
    if (n < 0) { this.fail('read', n); return 0; }
    this.rxFrames += n;
    return n;
  }

  /** rx ring → kernel, one send() to kick the batch out. Returns frames moved. */
  push(): number {
    if (this.down) return 0;
    const n = this.dp.fn.tpk_push(this.ring.stTx, this.port.rx.kring, this.ring.tx, this.ring.frames, this.ring.frameSize);
    if (n > 0) {
      const rc = this.host.packetKick(this.fd);
      if (rc < 0) { this.fail('send', rc); return 0; }
    }
    this.txFrames += n;
    return n;
  }

  protected release(): void {
    this.readOverruns(); // the fd is still open here
    try { this.host.unmap(this.dp.u8, this.ring.span, this.ring.bytes); } catch { /* memory already gone */ }
    this.dp.release(this.ring.span, this.ring.bytes);
    this.dropsAtClose = this.kernelDrops; // a port listed down still shows them
    this.dp.release(this.ring.stRx, this.dp.abi.TPK_SIZE); this.dp.release(this.ring.stTx, this.dp.abi.TPK_SIZE);
  }
}

export const openAfPacket = (c: AttachContext): AfPacketPort => attachKernel(c, (ifname, hdr, attach) => AfPacketPort.open(c.host, c.dp, ifname, hdr, attach));

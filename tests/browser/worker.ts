// A port of the page's switch, in a Web Worker: each turn it sends a batch of numbered frames
// to the other worker's MAC and checks what it received from it.
import { join, pushFrames, pullFrames, PortRef } from '../../src/embed/index.js';

interface Start { module: WebAssembly.Module; memory: WebAssembly.Memory; port: PortRef; id: number; ctl: Int32Array }

self.onmessage = async (m: MessageEvent<Start>) => {
  const { module, memory, port, id, ctl } = m.data;
  const e = await join(module, memory);
  const me = id + 1, peer = 2 - id;
  let seen = 0, sent = 0, received = 0, bad = 0, expect = 0;
  for (;;) {
    Atomics.wait(ctl, 0, seen);
    const r = Atomics.load(ctl, 0);
    if (r < 0) break;
    seen = r;
    for (const f of pullFrames(e, port.rxKring)) {
      const seq = new DataView(f.buffer).getUint32(14, true);
      if (f[5] !== me || f[11] !== peer || seq !== expect || f.length !== 64) bad++;
      expect = seq + 1;
      received++;
    }
    const frames: Uint8Array[] = [];
    for (let k = 0; k < 32; k++) {
      const f = new Uint8Array(64);
      f.set([2, 0, 0, 0, 0, peer, 2, 0, 0, 0, 0, me, 0x88, 0xb5]);
      new DataView(f.buffer).setUint32(14, sent + k, true);
      frames.push(f);
    }
    sent += pushFrames(e, port.txKring, r <= 300 ? frames : []);
    Atomics.store(ctl, 1 + id, r);
    Atomics.notify(ctl, 1 + id);
  }
  for (const _ of pullFrames(e, port.rxKring)) received++;
  (self as unknown as Worker).postMessage({ final: { sent, received, bad } });
};

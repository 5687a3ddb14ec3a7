// The browser test page: a switch in the page, two Web Workers as its ports over one
// SharedArrayBuffer-backed memory. Page and workers take turns (Atomics): the page forwards a
// round, each worker then sends a batch and takes what arrived. The result lands in
// window.wasmapResult for the test to read.
import { instantiate, EmbeddedSwitch } from '../../src/embed/index.js';

declare global { interface Window { wasmapResult?: unknown } }
const ROUNDS = 300;

async function main(): Promise<void> {
  const e = await instantiate(fetch('./wasmap.wasm'));
  const sw = new EmbeddedSwitch(e);
  const ports = [sw.addPort(256), sw.addPort(256)];
  const ctl = new Int32Array(new SharedArrayBuffer(16)); // [round, worker0 done, worker1 done]
  const workers = ports.map((p, i) => {
    const w = new Worker('./worker.mjs', { type: 'module' });
    w.postMessage({ module: e.module, memory: e.memory, port: p, id: i, ctl });
    return w;
  });
  const finals = workers.map((w) => new Promise<{ sent: number; received: number; bad: number }>((resolve) => {
    w.onmessage = (m: MessageEvent) => { if (m.data.final) resolve(m.data.final); };
  }));
  for (let r = 1; r <= ROUNDS + 2; r++) {
    sw.round();
    Atomics.store(ctl, 0, r);
    Atomics.notify(ctl, 0);
    for (const i of [1, 2]) {
      while (Atomics.load(ctl, i) !== r) await Atomics.waitAsync(ctl, i, Atomics.load(ctl, i)).value;
    }
  }
  sw.round();
  Atomics.store(ctl, 0, -1);
  Atomics.notify(ctl, 0);
  const [w0, w1] = await Promise.all(finals);
  const s0 = sw.stats(ports[0]), s1 = sw.stats(ports[1]);
  window.wasmapResult = { workers: [w0, w1], ports: [s0, s1], floodExtra: sw.floodExtra, crossOriginIsolated };
  document.body.textContent = JSON.stringify(window.wasmapResult);
}
main().catch((err: unknown) => { window.wasmapResult = { error: String(err) }; });

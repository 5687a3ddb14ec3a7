// Hostile passthrough guests. Worker-thread guests share the switch's memory through their
// port's region and CSB (src/guest.ts); here each one runs a tight loop of random writes —
// CSB words, ring head/cur/tail, ring header fields (buf_ofs, num_slots, buf_size), slot
// buf_idx/len/flags (MOREFRAG chains, destination bytes), buffer bytes — mixed with honest
// sends, syncs and kicks, all while the switch runs its rounds on the main thread. A capture
// watches one hostile port the whole time. Checked throughout and at the end:
//  - canary-filled guard spans (dp.alloc) around every port's region, CSB and the switch state;
//  - the switch-private krings of every port unchanged in their fixed fields;
//  - a bystander pair (virtual ports, explicit destinations) delivered intact, in order, all;
//  - the capture of the hostile port holds no byte of the bystanders' frames;
//  - conservation (sent + flood + seg = received + counted drops);
//  - every hostile port works or is broken with a known error code; the runner answers ping;
//  - the longest round.
// WASMAP_FUZZ_SCALE (default 1: a few seconds) and WASMAP_FUZZ_SEED choose the run. The
// guests' writes race the rounds, so a seed fixes what they write, not when it lands.
// This file is also the guest program (WASMAP_PTH_ROLE=hostile, in a worker thread).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker, workerData, parentPort } from 'node:worker_threads';
import { Runner } from '../../src/runner.js';
import { PtGuest } from '../../src/guest.js';
import { PtPort, PtWorkerInfo, PtProcessInfo } from '../../src/backends/passthrough.js';
import { spawn, ChildProcess } from 'node:child_process';
import { conservation, PortStats } from '../../src/switch.js';
import { loadHost, hostMissingReason, requireHost } from '../../src/host.js';

const SELF = fileURLToPath(import.meta.url);
const SCALE = Number(process.env.WASMAP_FUZZ_SCALE ?? 1);
const SEED = process.env.WASMAP_FUZZ_SEED ? Number(process.env.WASMAP_FUZZ_SEED) >>> 0 : (Math.random() * 0x100000000) >>> 0;
const HOSTILE = 2; // guests: h0 a worker thread (captured all along), h1 a process (each one spins: few cores here)
const MARK = 'BYSTANDER'; // in every bystander frame, and never anywhere a hostile guest can see

function rng(seed: number) {
  let s = seed >>> 0 || 1;
  return (n: number) => { s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0; return n <= 1 ? 0 : s % n; };
}
const macOf = (id: number) => [2, 0, 0, 0, 0x77, id];

// ---- the hostile guest (a worker thread or a process) --------------------------------------
interface Where { base: number; span: number; csb: number; kickSwitch: number; slots: number; nbufs: number; bufSize: number }
function hostileLoop(g: PtGuest, info: Where, seed: number, idx: number, peers: number[], stop: () => boolean, ready: () => void): { ops: number; threw: number } {
  const host = requireHost();
  const dp = g.dp, a = dp.abi, r = rng(seed);
  const n = info.slots, nb = info.nbufs, bsize = info.bufSize;
  const mem32 = new Int32Array(dp.memory.buffer);
  const rings = [g.tx.ring, g.rx.ring];
  const csbWords = [a.CSB_ATOK_TX, a.CSB_ATOK_RX, a.CSB_KTOA_TX, a.CSB_KTOA_RX].flatMap((e) => [0, 4, 8, 12, 16].map((o) => info.csb + e + o));
  const hdrFields = [a.RING_HEAD, a.RING_CUR, a.RING_TAIL, a.RING_NUM_SLOTS, a.RING_BUF_SIZE, a.RING_BUF_OFS, a.RING_BUF_OFS + 4, a.RING_FLAGS, a.RING_DIR];
  const val = (): number => {
    switch (r(6)) {
      case 0: return r(n + 3); // around the ring
      case 1: return [n - 1, n, n + 1, 0xffffffff, 0x7fffffff, 0x80000000, 0][r(7)];
      case 2: return r(nb + 3); // around the buffers
      case 3: return r(0x10000);
      default: return (r(0x10000) * 0x10000 + r(0x10000)) >>> 0;
    }
  };
  const slotAt = (ring: number, i: number) => ring + a.RING_SLOTS + a.SLOT_SIZE * i;
  const randomWrite = () => {
    switch (r(5)) {
      case 0: Atomics.store(mem32, csbWords[r(csbWords.length)] >> 2, val() | 0); break;
      case 1: dp.setU32(rings[r(2)] + hdrFields[r(hdrFields.length)], val()); break;
      case 2: dp.setU32(slotAt(rings[r(2)], r(n)), r(3) ? r(nb + 2) : val()); break;
      case 3: dp.setU16(slotAt(rings[r(2)], r(n)) + 4, r(3) ? r(bsize + 2) : r(0x10000)); break;
      default: dp.setU16(slotAt(rings[r(2)], r(n)) + 6, (r(2) ? a.NS_MOREFRAG : 0) | (r(3) ? 0 : r(256) << 8) | r(64)); break;
    }
  };
  // what a guest does after its port was reset: take head, cur and tail from the CSB
  const resync = (d: number) => {
    const ktoa = info.csb + (d ? a.CSB_KTOA_RX : a.CSB_KTOA_TX), ring = rings[d];
    const hwcur = Atomics.load(mem32, (ktoa + a.CSB_KTOA_HWCUR) >> 2), hwtail = Atomics.load(mem32, (ktoa + a.CSB_KTOA_HWTAIL) >> 2);
    dp.setU32(ring + a.RING_HEAD, hwcur); dp.setU32(ring + a.RING_CUR, hwcur); dp.setU32(ring + a.RING_TAIL, hwtail);
  };
  let ops = 0, threw = 0;
  ready();
  // calm spells (honest traffic, plus in-range rewrites racing the switch) alternate with
  // storms (anything): a guest broken at once all the time would test little
  let calm = false, spell = 0;
  const CALM = [0, 1, 2, 3, 4, 5, 8];
  while ((ops & 127) !== 0 || !stop()) {
    if (--spell <= 0) { calm = r(5) < 3; spell = 50 + r(450); }
    try {
      switch (calm ? CALM[r(CALM.length)] : r(12)) {
        case 0: case 1: case 2: case 3: { // an honest-looking send: frames to the other hostile guests, anyone, or everyone
          if (r(2)) resync(0);
          const frames: Uint8Array[] = [];
          for (let k = 1 + r(6); k > 0; k--) {
            const f = new Uint8Array(14 + r(r(4) ? 200 : bsize * 3));
            f.set(r(3) ? macOf(peers[r(peers.length)]) : r(2) ? [255, 255, 255, 255, 255, 255] : [r(256), r(256), r(256), r(256), r(256), r(256)], 0);
            f.set(macOf(100 + idx), 6);
            for (let i = 12; i < f.length; i += 7) f[i] = r(256);
            frames.push(f);
          }
          g.tx.send(frames, r(4) ? 0 : r(256) << 8); // sometimes an explicit destination byte
          g.txsync();
          break;
        }
        case 4: if (r(2)) resync(1); g.recv(); break;
        case 5: if (r(2)) g.sync(r(2) ? 'tx' : 'rx'); else host.eventfdSignal(info.kickSwitch); break; // a kick nobody asked for
        case 6: { // a MOREFRAG chain of valid-looking slots, then publish a head past it
          const ring = rings[0];
          const h = dp.u32(ring + a.RING_HEAD) % n, len = 2 + r(a.NETMAP_MAX_FRAGS + 4);
          for (let k = 0; k < len; k++) {
            const s = slotAt(ring, (h + k) % n);
            dp.setU32(s, 2 + r(nb - 2)); dp.setU16(s + 4, r(bsize + 1)); dp.setU16(s + 6, k + 1 < len || r(4) === 0 ? a.NS_MOREFRAG : 0);
          }
          Atomics.store(mem32, (info.csb + a.CSB_ATOK_TX + a.CSB_ATOK_HEAD) >> 2, (h + len) % n);
          if (r(2)) host.eventfdSignal(info.kickSwitch);
          break;
        }
        case 7: { // buffer and ring bytes anywhere in the guest's own region
          if (r(4)) break;
          const at = info.base + r(info.span - 64);
          dp.u8.fill(r(256), at, at + r(64));
          break;
        }
        case 8: { // send honestly, then keep rewriting what was published with in-range values (races tx_scan)
          resync(0);
          const h0 = dp.u32(rings[0] + a.RING_HEAD);
          const sent = g.tx.send([new Uint8Array(60 + r(1400)).fill(0x42), new Uint8Array(60 + r(3000)).fill(0x43)]);
          g.txsync();
          const h1 = dp.u32(rings[0] + a.RING_HEAD);
          for (let k = 0; sent && k < 64; k++) {
            const s = slotAt(rings[0], (h0 + r(((h1 - h0 + n) % n) || 1)) % n);
            if (r(2)) dp.setU32(s, 2 + r(nb - 2)); else dp.setU16(s + 4, r(bsize + 1));
          }
          break;
        }
        case 9: { // rewrite the rx slots the switch is about to fill, with in-range buffers (races delivery)
          const tail = dp.u32(info.csb + a.CSB_KTOA_RX + a.CSB_KTOA_HWTAIL) % n;
          for (let k = 0; k < 64; k++) {
            const s = slotAt(rings[1], (tail + r(n)) % n);
            if (r(4)) dp.setU32(s, 2 + r(nb - 2)); else dp.setU32(s, val());
          }
          break;
        }
        default: if (r(3) === 0) { for (let k = 100 + r(400); k > 0; k--) randomWrite(); } else randomWrite(); // now and then a tight burst while the switch runs
      }
    } catch { threw++; } // its own ring API on its own garbage may refuse: its problem
    ops++;
  }
  return { ops, threw };
}

function hostileWorker(): void {
  const { info, seed, ctl, idx, peers } = workerData as { info: PtWorkerInfo; seed: number; ctl: SharedArrayBuffer; idx: number; peers: number[] };
  const flag = new Int32Array(ctl);
  const g = PtGuest.fromWorker(info);
  const res = hostileLoop(g, { ...info, base: info.base }, seed, idx, peers, () => Atomics.load(flag, 0) !== 0, () => parentPort!.postMessage({ ready: true }));
  parentPort!.postMessage(res);
}

// a guest process: the parent opened its port and passed the four fds as fds 3..6; it stops
// when its stdin becomes readable (the parent closes it)
function hostileProcess(): void {
  const { info, seed, idx, peers } = JSON.parse(process.env.WASMAP_PTH_ARGS!) as { info: PtProcessInfo; seed: number; idx: number; peers: number[] };
  const host = requireHost();
  const g = PtGuest.fromFds(info, [3, 4, 5, 6]);
  const res = hostileLoop(g, { base: g.regionBase, span: info.span, csb: g.csb, kickSwitch: 5, slots: info.slots, nbufs: info.nbufs, bufSize: info.bufSize },
    seed, idx, peers, () => host.pollFds([0], 0)[0] !== 0, () => process.stdout.write('ready\n'));
  process.stdout.write(JSON.stringify(res) + '\n');
  g.close();
}

// ---- the switch side (the test) -----------------------------------------------------------
const GUARD = 4096;
const canary = (i: number) => (0xa5 ^ (i * 29)) & 255;

if (process.env.WASMAP_PTH_ROLE === 'hostile') hostileWorker();
else if (process.env.WASMAP_PTH_ROLE === 'hostile-process') hostileProcess();
else {
  const skip = loadHost() ? false : (hostMissingReason() ?? 'no native host');
  test(`hostile passthrough guests (seed ${SEED}, scale ${SCALE})`, { skip, timeout: 60000 + 30000 * SCALE }, async () => {
    const runner = new Runner([]);
    const dp = runner.dp, a = dp.abi;
    const guards: number[] = [];
    const guard = () => { const at = dp.alloc(GUARD, 64); for (let i = 0; i < GUARD; i++) dp.u8[at + i] = canary(i); guards.push(at); };
    const guardsIntact = (): string | null => {
      for (const at of guards) for (let i = 0; i < GUARD; i++) if (dp.u8[at + i] !== canary(i)) return `guard span at ${at}: byte ${i} overwritten`;
      return null;
    };
    const tmp = mkdtempSync(join(tmpdir(), 'wasmap-pth-'));
    const ctl = new SharedArrayBuffer(4 * (1 + HOSTILE));
    const flag = new Int32Array(ctl);
    const workers: Worker[] = [];
    let child: ChildProcess | null = null;
    const exits: Promise<unknown>[] = [];
    const mem32 = new Int32Array(dp.memory.buffer);
    const times: number[] = [];
    let resets = 0, rounds = 0, longest = 0, sentAB = 0, sentBA = 0, gotAB = 0, gotBA = 0, foreign = 0;
    try {
      guard(); const sw = runner.vale.switch('vale7', true); guard();
      const pts: PtPort[] = [];
      for (let i = 0; i < HOSTILE; i++) { guard(); pts.push(runner.ptOpen('vale7', `h${i}`, i === 0 ? 'worker' : 'process', { slots: 64 })); guard(); }
      guard(); runner.attach('vale7', 'a'); guard(); runner.attach('vale7', 'b'); guard();
      const pa = sw.port('a')!, pb = sw.port('b')!;
      // the switch-private fields of every kring, which nothing a guest does may change
      const KFIELDS = ['KR_RING', 'KR_NSLOTS', 'KR_DIR', 'KR_BUF_BASE', 'KR_BUF_SIZE', 'KR_NBUFS', 'KR_REGION', 'KR_OWNER', 'KR_USER'];
      const krings = [pa, pb, ...pts.map((p) => p.port)].flatMap((p) => [p.tx.kring, p.rx.kring]);
      const kSnap = () => krings.map((k) => KFIELDS.map((f) => dp.u32(k + a[f])).join(','));
      const kBefore = kSnap();
      runner.capture('vale7', 'h0', join(tmp, 'h0.pcap'), 0);

      const seedOf = (i: number) => (SEED + 0x9e3779b9 * (i + 1)) >>> 0, peersOf = (i: number) => [100, 101].filter((x) => x !== 100 + i);
      const w = new Worker(SELF, { workerData: { info: pts[0].workerInfo(), seed: seedOf(0), ctl, idx: 0, peers: peersOf(0) }, env: { ...process.env, WASMAP_PTH_ROLE: 'hostile' } });
      workers.push(w);
      exits.push(new Promise((res) => w.once('exit', res)));
      const wDone = new Promise<{ ops: number; threw: number }>((resolve, reject) => {
        w.on('message', (m: { ready?: boolean; ops: number; threw: number }) => { if (!m.ready) resolve(m); });
        w.once('error', reject);
      });
      const wReady = new Promise((resolve, reject) => { w.once('message', resolve); w.once('error', reject); });
      const { fds, ...pinfo } = pts[1].processInfo();
      child = spawn(process.execPath, [SELF], {
        env: { ...process.env, WASMAP_PTH_ROLE: 'hostile-process', WASMAP_PTH_ARGS: JSON.stringify({ info: { ...pinfo, fds }, seed: seedOf(1), idx: 1, peers: peersOf(1) }) },
        stdio: ['pipe', 'pipe', 'pipe', fds.region, fds.csb, fds.kickSwitch, fds.kickGuest],
      });
      const c = child;
      let cout = '', cerr = '';
      c.stdout!.on('data', (d) => { cout += d; }); c.stderr!.on('data', (d) => { cerr += d; });
      exits.push(new Promise((res) => { if (c.exitCode !== null) res(0); else c.once('close', res); }));
      const cReady = new Promise<void>((resolve, reject) => {
        const t = setInterval(() => { if (cout.includes('ready')) { clearInterval(t); resolve(); } else if (c.exitCode !== null) { clearInterval(t); reject(new Error(`guest process exited: ${cerr}`)); } }, 5);
      });
      const cDone = new Promise<{ ops: number; threw: number }>((resolve, reject) => c.once('close', (code) => {
        const line = cout.split('\n').find((l) => l.startsWith('{'));
        if (code === 0 && line) resolve(JSON.parse(line)); else reject(new Error(`guest process exited ${code}: ${cerr}`));
      }));
      const results = [wDone, cDone];
      await Promise.all([wReady, cReady]); // all guests running

      // bystanders: a <-> b, explicit destinations (no lookup a guest could poison), sequence-checked
      const r = rng(SEED);
      const bframe = (from: number, to: number, seq: number) => {
        const f = new Uint8Array(40 + r(1400));
        f.set(macOf(to), 0); f.set(macOf(from), 6); f[12] = 0x88; f[13] = 0xb5;
        f.set(Buffer.from(MARK), 14);
        new DataView(f.buffer).setUint32(24, seq, true);
        for (let i = 28; i < f.length; i++) f[i] = (seq * 13 + i) & 255;
        return f;
      };
      const check = (frames: Uint8Array[], from: number, expect: number): number => {
        for (const f of frames) {
          if (Buffer.from(f.subarray(14, 23)).toString() !== MARK || f[11] !== from) { foreign++; continue; }
          const seq = new DataView(f.buffer, f.byteOffset).getUint32(24, true);
          assert.equal(seq, expect, `bystander frame ${expect} from ${from}: got sequence ${seq}`);
          for (let i = 28; i < f.length; i++) if (f[i] !== ((seq * 13 + i) & 255)) assert.fail(`bystander frame ${seq} from ${from}: byte ${i} corrupted`);
          expect++;
        }
        return expect;
      };
      const ROUNDS = 3000 * SCALE, until = Date.now() + 8000 * SCALE;
      for (; rounds < ROUNDS && Date.now() < until; rounds++) {
        const k = 1 + r(8);
        sentAB += pa.send(Array.from({ length: k }, (_, j) => bframe(1, 2, sentAB + j)), (pb.index + 1) << 8);
        sentBA += pb.send(Array.from({ length: k }, (_, j) => bframe(2, 1, sentBA + j)), (pa.index + 1) << 8);
        const t = performance.now();
        if (rounds % 5 === 4) runner.stepOrSleep(0, 0); else runner.step();
        const took = performance.now() - t;
        longest = Math.max(longest, took);
        times.push(took);
        gotAB = check(pb.recv(), 1, gotAB);
        gotBA = check(pa.recv(), 2, gotBA);
        if (rounds % 10 === 9) { // a broken hostile port is reset (netmap's ring reinit), so the hostility goes on
          for (const p of pts) {
            if (!p.errors.tx && !p.errors.rx) continue;
            resets++;
            for (const [k, e] of [[p.port.tx.kring, a.CSB_ATOK_TX], [p.port.rx.kring, a.CSB_ATOK_RX]]) {
              dp.fn.kring_reset(k);
              const hwcur = dp.u32(k + a.KR_HWCUR);
              Atomics.store(mem32, (p.csb + e + a.CSB_ATOK_CUR) >> 2, hwcur); Atomics.store(mem32, (p.csb + e + a.CSB_ATOK_HEAD) >> 2, hwcur);
            }
          }
        }
        if (rounds % 200 === 0) {
          const bad = guardsIntact(); if (bad) assert.fail(`round ${rounds}: ${bad}`);
          assert.deepEqual(kSnap(), kBefore, `round ${rounds}: switch-private kring fields unchanged`);
          assert.equal(runner.handle({ verb: 'ping' }).ok, true, 'the runner answers');
        }
      }
      Atomics.store(flag, 0, 1); child.stdin!.end();
      const res = await Promise.all(results);
      for (let i = 0; i < 20; i++) { runner.step(); gotAB = check(pb.recv(), 1, gotAB); gotBA = check(pa.recv(), 2, gotBA); }
      const ops = res.reduce((s, x) => s + x.ops, 0);

      const bad = guardsIntact(); if (bad) assert.fail(`at the end: ${bad}`);
      assert.deepEqual(kSnap(), kBefore, 'switch-private kring fields unchanged');
      assert.equal(gotAB, sentAB, `every bystander frame a -> b delivered (${gotAB} of ${sentAB})`);
      assert.equal(gotBA, sentBA, `every bystander frame b -> a delivered (${gotBA} of ${sentBA})`);
      assert.deepEqual(pa.region.audit(), []); assert.deepEqual(pb.region.audit(), []);
      runner.captureStop('vale7', 'h0');
      const pcap = readFileSync(join(tmp, 'h0.pcap'));
      assert.equal(pcap.includes(MARK), false, 'the hostile port\'s capture holds no byte of the bystanders\' frames');
      const gone = (runner as unknown as { gone: PortStats[] }).gone;
      const law = conservation(sw.stats(), gone);
      assert.ok(law.ok, `conservation: sent ${law.sent} + flood ${law.floodExtra} + seg ${law.segExtra} = received ${law.received} + drops ${law.drops}`);
      const codes = new Set([0, a.E_HEAD, a.E_CUR, a.E_BUF_IDX, a.E_BUF_LEN, a.E_FRAGS, a.E_BROKEN]);
      const states = pts.map((p) => {
        const e = p.errors;
        assert.ok(codes.has(e.tx) && codes.has(e.rx), `hostile port ${p.name}: works or broken with a known code (tx ${e.tx}, rx ${e.rx})`);
        return e.tx || e.rx ? `broken(${e.tx},${e.rx})` : 'working';
      });
      const hostileTx = pts.map((p) => Number(sw.stats().ports.find((x) => x.name === p.name)!.txPackets));
      console.log(`fuzz passthrough-hostile: seed=${SEED} ops=${ops} longest_round_ms=${longest.toFixed(1)} p99_round_ms=${times.sort((x, y) => x - y)[Math.floor(times.length * 0.99)].toFixed(2)} rounds=${rounds} bystander_frames=${gotAB + gotBA} hostile_frames_taken=${hostileTx.join('/')} guest_ops=${res.map((x) => x.ops).join('/')} foreign_at_bystanders=${foreign} resets=${resets} ports=${states.join('/')} guest_refusals=${res.reduce((s, x) => s + x.threw, 0)}`);
      assert.ok(longest < 2000, `longest round ${longest.toFixed(1)} ms`);
    } catch (e) {
      console.log(`fuzz passthrough-hostile FAILED: seed=${SEED} scale=${SCALE} rounds=${rounds} (WASMAP_FUZZ_SEED=${SEED} to rerun)`);
      throw e;
    } finally {
      Atomics.store(flag, 0, 1);
      child?.stdin?.end();
      const kill = setTimeout(() => { for (const w of workers) void w.terminate(); child?.kill('SIGKILL'); }, 5000);
      await Promise.all(exits);
      clearTimeout(kill);
      runner.close();
      rmSync(tmp, { recursive: true, force: true });
    }
  });
}

// Passthrough guests against a real switch daemon: guest processes receive their port's
// region, CSB and eventfds over the control socket (SCM_RIGHTS) and drive the rings
// themselves; worker-thread guests share the memory. This file is also the guest program: run
// with WASMAP_PT_ROLE set, it plays one guest and prints a JSON line.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, readlinkSync, readdirSync, ftruncateSync, readFileSync, openSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker, workerData, parentPort } from 'node:worker_threads';
import { Daemon } from '../../src/ctl/daemon.js';
import { ctlRequest } from '../../src/ctl/client.js';
import { PtGuest } from '../../src/guest.js';
import { Runner } from '../../src/runner.js';
import { loadHost, hostMissingReason } from '../../src/host.js';

const ROLE = process.env.WASMAP_PT_ROLE;
const SELF = fileURLToPath(import.meta.url);

// ---- frames: MACs of guest `id`, a sequence number and a pattern derived from both --------
const mac = (id: number) => [2, 0, 0, 0, 0, id];
function frame(from: number, to: number, seq: number, len: number): Uint8Array {
  const f = new Uint8Array(len);
  f.set(mac(to), 0); f.set(mac(from), 6); f[12] = 0x88; f[13] = 0xb5; // local experimental ethertype
  new DataView(f.buffer).setUint32(14, seq, true);
  for (let i = 18; i < len; i++) f[i] = (seq * 7 + i + from) & 255;
  return f;
}
function checkFrame(f: Uint8Array, from: number, seq: number): string | null {
  if (f[11] !== from) return `frame from ${f[11]}, expected from ${from}`;
  const got = new DataView(f.buffer, f.byteOffset).getUint32(14, true);
  if (got !== seq) return `sequence ${got}, expected ${seq}`;
  for (let i = 18; i < f.length; i++) if (f[i] !== ((seq * 7 + i + from) & 255)) return `byte ${i} of frame ${seq} corrupted`;
  return null;
}

/** Both directions at once: send `rounds` bursts of `burst` frames to the peer, after each
 *  burst receive the peer's, then stay idle `gapMs` (so switch and guests fall asleep). */
function exchange(g: PtGuest, me: number, peer: number, rounds: number, burst: number, gapMs: number) {
  let sent = 0, got = 0, foreign = 0;
  const deadline = Date.now() + 60000 + rounds * 50;
  for (let r = 0; r < rounds; r++) {
    let queued = 0;
    while (queued < burst) {
      const batch: Uint8Array[] = [];
      for (let i = queued; i < burst && batch.length < 64; i++) batch.push(frame(me, peer, sent + i, 60 + ((sent + i) % 200)));
      const n = g.send(batch);
      queued += n; 
      if (n < batch.length) g.wait('tx', 100);
      if (Date.now() > deadline) throw new Error(`stuck sending round ${r}`);
    }
    sent += burst;
    while (got < sent) {
      const fs = g.recv();
      for (const f of fs) {
        if (f[11] !== peer) { foreign++; continue; } // flooded by another guest on the switch
        const e = checkFrame(f, peer, got); if (e) throw new Error(e); got++;
      }
      if (fs.length === 0) g.wait('rx', 200); // no spin: every idle moment is a sleep and a kick
      if (Date.now() > deadline) throw new Error(`stuck receiving round ${r}: ${got} of ${sent}`);
    }
    if (gapMs) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, gapMs);
  }
  return { sent, got, foreign, kicksSent: g.kicksSent, kicksReceived: g.kicksReceived, sleeps: g.sleeps, errors: g.errors };
}

async function guestMain(role: string) {
  const socket = process.env.WASMAP_PT_SOCKET!, port = process.env.WASMAP_PT_PORT!;
  const g = PtGuest.connect(socket, port);
  const out = (o: unknown) => process.stdout.write(JSON.stringify(o) + '\n');
  const peer = process.env.WASMAP_PT_PEER;
  // frames sent before the peer's port exists would be dropped (counted) at the switch
  for (const until = Date.now() + 20000; peer;) {
    const ports = (await ctlRequest(socket, 'list', { switch: port.split(':')[0] })) as { name: string }[];
    if (ports.some((p) => p.name === peer)) break;
    if (Date.now() > until) throw new Error(`peer ${peer} never attached`);
    await new Promise((r) => setTimeout(r, 10));
  }
  if (role === 'exchange') {
    const [me, peer, rounds, burst, gap] = process.env.WASMAP_PT_ARGS!.split(',').map(Number);
    out(exchange(g, me, peer, rounds, burst, gap));
  } else if (role === 'sink') { // make its MAC known, then drain until killed
    g.send([frame(8, 99, 0, 60)]);
    out({ ready: true });
    for (;;) if (g.recv().length === 0) g.wait('rx', 100);
  } else if (role === 'blast') { // send to the sink until killed
    out({ ready: true });
    let seq = 0;
    for (;;) {
      const batch: Uint8Array[] = [];
      for (let i = 0; i < 32; i++) batch.push(frame(9, 8, seq + i, 60));
      const n = g.send(batch);
      seq += n;
      if (n === 0) g.wait('tx', 50);
    }
  } else if (role === 'garbage') { // a guest that writes nonsense into its CSB and ring
    g.send([frame(7, 1, 0, 60)]);
    g.tx.head = 5000; g.tx.cur = 1; // beyond the ring: the next sync publishes it
    g.txsync();
    const until = Date.now() + 3000;
    while (g.errors.tx === 0 && Date.now() < until) g.wait('tx', 20);
    out({ errors: g.errors });
  } else if (role === 'probe') { // what the guest received: exactly its region and CSB
    const fds = readdirSync('/proc/self/fd').map((f) => { try { return readlinkSync(`/proc/self/fd/${f}`); } catch { return ''; } });
    const memfds = fds.filter((l) => l.startsWith('/memfd:'));
    // the mappings' own files (what the received fds were), opened again: sealed against resizing
    const resize = readMaps().map((m) => {
      const fd = openSync(`/proc/self/map_files/${m.range}`, 'r+');
      try { ftruncateSync(fd, 0); return 'resized'; } catch (e) { return (e as { code?: string }).code; } finally { closeSync(fd); }
    });
    out({ memfds, mapped: readMaps().map((m) => `${m.path} ${m.bytes}`), resize, slots: g.slots });
  }
  g.close();
}
function readMaps(): { range: string; path: string; bytes: number }[] {
  const text = readFileSync('/proc/self/maps', 'utf8');
  return text.split('\n').filter((l) => l.includes('memfd:')).map((l) => {
    const [range, , , , , path] = l.split(/\s+/);
    const [s, e] = range.split('-').map((x) => parseInt(x, 16));
    return { range, path, bytes: e - s };
  });
}

if (ROLE === 'worker') {
  const { info, args } = workerData as { info: Parameters<typeof PtGuest.fromWorker>[0]; args: [number, number, number, number, number] };
  try { parentPort!.postMessage(exchange(PtGuest.fromWorker(info), ...args)); } catch (e) { parentPort!.postMessage({ error: (e as Error).stack }); }
} else if (ROLE) {
  await guestMain(ROLE);
} else {
  const host = loadHost();
  const skip = host ? false : (hostMissingReason() ?? 'no native host');
  let dir = '', socket = '', daemon: Daemon | null = null;

  before(async () => {
    if (skip) return;
    dir = mkdtempSync(join(tmpdir(), 'wasmap-pt-'));
    socket = join(dir, 'ctl.sock');
    daemon = await Daemon.start({ switches: ['vale0', 'vale1'], socket, spinUs: 2000 });
  });
  // every guest process started, killed at the end even when a test failed half-way (a sink
  // guest left running would keep this file from ever exiting)
  const children = new Set<ChildProcess>();
  after(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await daemon?.stop(); if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const guest = (role: string, port: string, args = '', peer = ''): ChildProcess => {
    const c = spawn(process.execPath, [SELF], { env: { ...process.env, WASMAP_PT_ROLE: role, WASMAP_PT_SOCKET: socket, WASMAP_PT_PORT: port, WASMAP_PT_ARGS: args, WASMAP_PT_PEER: peer }, stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(c);
    return c;
  };
  const result = (c: ChildProcess) => new Promise<{ code: number | null; out: string; err: string }>((resolve) => {
    let out = '', err = '';
    c.stdout!.on('data', (d) => { out += d; }); c.stderr!.on('data', (d) => { err += d; });
    c.on('close', (code) => resolve({ code, out, err }));
  });
  const firstLine = (c: ChildProcess) => new Promise<string>((resolve) => { let t = ''; c.stdout!.on('data', (d) => { t += d; if (t.includes('\n')) resolve(t); }); });
  type Stats = { name: string; guestsGone: { name: string; reason: string; stats: Record<string, number>; audit: string[]; kicksIn: number; kicksOut: number }[]; floodExtra: number; ports: Record<string, number | string>[] }[];
  const stats = async (sw: string) => ((await ctlRequest(socket, 'stats', { switch: sw })) as Stats)[0];
  const waitFor = async (what: string, ok: () => Promise<boolean>, ms = 5000) => {
    const until = Date.now() + ms;
    while (!(await ok())) { if (Date.now() > until) assert.fail(`timed out waiting for ${what}`); await new Promise((r) => setTimeout(r, 20)); }
  };

  test('two guest processes exchange frames through the switch, with idle gaps: every frame arrives intact, in order', { skip, timeout: 120000 }, async () => {
    const a = guest('exchange', 'vale0:ga', '1,2,40,300,15', 'vale0:gb'), b = guest('exchange', 'vale0:gb', '2,1,40,300,15', 'vale0:ga');
    const [ra, rb] = await Promise.all([result(a), result(b)]);
    assert.equal(ra.code, 0, ra.err); assert.equal(rb.code, 0, rb.err);
    const ja = JSON.parse(ra.out), jb = JSON.parse(rb.out);
    assert.equal(ja.got, 12000); assert.equal(jb.got, 12000);
    assert.ok(ja.sleeps > 0 && jb.sleeps > 0, 'the guests slept in the idle gaps');
    assert.ok(ja.kicksReceived > 0, 'and were woken by kicks');
    await waitFor('both ports reclaimed', async () => (await stats('vale0')).guestsGone.filter((g) => /vale0:g[ab]/.test(g.name)).length === 2);
    const s = await stats('vale0');
    const gone = s.guestsGone.filter((g) => /vale0:g[ab]/.test(g.name));
    const sent = gone.reduce((n, g) => n + g.stats.txPackets, 0), rcvd = gone.reduce((n, g) => n + g.stats.rxPackets, 0);
    const drops = gone.reduce((n, g) => n + g.stats.dropFull + g.stats.dropBroken + g.stats.dropNoDst + g.stats.dropLookup + g.stats.dropSize + g.stats.dropHdr, 0);
    assert.equal(sent, 24000);
    assert.equal(sent, rcvd + drops, 'conservation');
    assert.equal(drops, 0);
    for (const g of gone) assert.deepEqual(g.audit, [], 'every buffer of the port accounted for when it was reclaimed');
    assert.ok(gone.every((g) => g.kicksOut > 0 && g.kicksIn > 0), 'kicks went both ways');
  });

  test('worker-thread guests share the memory and are woken with Atomics.notify', { skip, timeout: 60000 }, async () => {
    const runner = new Runner(['vale5']);
    const pa = runner.ptOpen('vale5', 'wa', 'worker'), pb = runner.ptOpen('vale5', 'wb', 'worker');
    const run = (info: unknown, args: number[]) => new Promise<Record<string, unknown>>((resolve, reject) => {
      const w = new Worker(SELF, { workerData: { info, args }, env: { ...process.env, WASMAP_PT_ROLE: 'worker' } });
      w.once('message', resolve); w.once('error', reject);
    });
    let stop = false;
    const loop = (async () => { while (!stop) { for (let i = 0; i < 200; i++) runner.stepOrSleep(5, 500); await new Promise((r) => setImmediate(r)); } })();
    try {
      const [ra, rb] = await Promise.all([run(pa.workerInfo(), [1, 2, 20, 200, 10]), run(pb.workerInfo(), [2, 1, 20, 200, 10])]);
      assert.equal(ra.error, undefined, String(ra.error)); assert.equal(rb.error, undefined, String(rb.error));
      assert.equal(ra.got, 4000); assert.equal(rb.got, 4000);
      assert.ok((ra.kicksReceived as number) + (rb.kicksReceived as number) > 0, 'woken by Atomics.notify');
    } finally {
      stop = true; await loop;
      const s = runner.stats('vale5') as Stats;
      runner.close();
      const ports = s[0].ports;
      const sent = ports.reduce((n, p) => n + (p.txPackets as number), 0), rcvd = ports.reduce((n, p) => n + (p.rxPackets as number), 0);
      assert.equal(sent, 8000); assert.equal(rcvd, 8000);
    }
  });

  test('a captured passthrough guest lying in its ring header and slots: the pcap holds its own frames and no byte of another port', { skip, timeout: 30000 }, () => {
    const runner = new Runner(['vale6']);
    const tmp = mkdtempSync(join(tmpdir(), 'wasmap-ptcap-'));
    try {
      const a = runner.dp.abi;
      const pt = runner.ptOpen('vale6', 'liar', 'worker', { slots: 64 });
      const g = PtGuest.fromWorker(pt.workerInfo()); // a worker-mode guest, here on this thread: same memory
      runner.attach('vale6', 'b1'); runner.attach('vale6', 'b2');
      const sw = runner.vale.switch('vale6'), b1 = sw.port('b1')!, b2 = sw.port('b2')!;
      const eth = (to: number, from: number, text: string, len = 200) => {
        const f = new Uint8Array(len); f.set(mac(to), 0); f.set(mac(from), 6); f[12] = 0x88; f[13] = 0xb5;
        for (let i = 14; i < len; i++) f[i] = text.charCodeAt((i - 14) % text.length);
        return f;
      };
      // the bystanders make their MACs known (floods, no secret in them), then talk unicast
      b1.send([eth(0x7e, 0x31, 'hello')]); b2.send([eth(0x7e, 0x32, 'hello')]); runner.step();
      b1.recv(); b2.recv(); g.recv(); runner.step();
      const file = join(tmp, 'liar.pcap');
      runner.capture('vale6', 'liar', file, 0);
      assert.equal(b1.send([eth(0x32, 0x31, 'BYSTANDER-SECRET;'), eth(0x32, 0x31, 'BYSTANDER-SECRET;')]), 2);
      runner.step(); // delivered into b2's rx buffers, left there
      const target = b2.rx.buf(b2.rx.head).byteOffset; // where the secret lies now
      const liarBase = runner.dp.u32(pt.port.tx.kring + a.KR_BUF_BASE);
      assert.ok(target > liarBase, 'test precondition: the bystander buffer lies above the liar\'s buffers');
      // 1: honest slots, a lying ring header (buffer size 64): capture must not use the header
      const own = [eth(0x31, 0x40, 'LIAR-OWN-FRAME;'), eth(0x31, 0x40, 'LIAR-OWN-FRAME;')];
      assert.equal(g.tx.send(own), 2);
      runner.dp.setU32(g.tx.ring + a.RING_BUF_SIZE, 64);
      runner.dp.setU32(g.rx.ring + a.RING_BUF_SIZE, 64);
      g.txsync(); runner.step();
      // 2: a slot naming "buffer" (target - base) / 64, with the lying header: the bystander's frame
      const h = g.tx.head;
      g.tx.send([eth(0x31, 0x40, 'LIAR-OWN-FRAME;')]);
      g.tx.setBufIdx(h, (target - liarBase) / 64); g.tx.setLen(h, 64);
      g.txsync(); runner.step(); runner.step();
      // 3: a ring head far beyond what the guest published (never synced)
      g.tx.head = (g.tx.head + 5) % 64; runner.step();
      runner.captureStop('vale6', 'liar');
      const pcap = readFileSync(file);
      assert.equal(pcap.includes('BYSTANDER'), false, 'no byte of another port\'s frame in the capture of the liar');
      let n = 0; for (let at = pcap.indexOf('LIAR-OWN'); at >= 0; at = pcap.indexOf('LIAR-OWN', at + 1 + 180)) n++;
      assert.equal(n, 2, 'the two frames the switch took from the liar are in the capture, whole');
      assert.notEqual(pt.errors.tx, 0, 'the lying slot broke the liar\'s tx ring');
      const got = b2.recv();
      assert.equal(got.length, 2, 'the bystanders\' frames arrived');
      for (const f of got) assert.equal(Buffer.from(f.subarray(14, 31)).toString(), 'BYSTANDER-SECRET;');
    } finally {
      runner.close();
      rmSync(tmp, { recursive: true, force: true });
    }
  });

  test('a guest writing garbage breaks only its own port; the others go on', { skip, timeout: 60000 }, async () => {
    const a = guest('exchange', 'vale1:ok1', '1,2,30,200,10', 'vale1:ok2'), b = guest('exchange', 'vale1:ok2', '2,1,30,200,10', 'vale1:ok1');
    const bad = guest('garbage', 'vale1:bad');
    const [rbad, ra, rb] = await Promise.all([result(bad), result(a), result(b)]);
    assert.equal(rbad.code, 0, rbad.err);
    const jbad = JSON.parse(rbad.out);
    assert.equal(jbad.errors.tx, -1, 'the guest sees its tx ring broken with E_HEAD');
    assert.equal(ra.code, 0, ra.err); assert.equal(rb.code, 0, rb.err);
    assert.equal(JSON.parse(ra.out).got, 6000); assert.equal(JSON.parse(rb.out).got, 6000);
    await waitFor('bad port reclaimed', async () => (await stats('vale1')).guestsGone.some((g) => g.name === 'vale1:bad'));
    const g = (await stats('vale1')).guestsGone.find((x) => x.name === 'vale1:bad')!;
    assert.equal(g.stats.txErrors, 1, 'one refused sync counted');
    assert.deepEqual(g.audit, []);
  });

  const KILLS = Number(process.env.WASMAP_PT_KILLS ?? 10); // npm run fuzz: 100
  test(`kill a sending guest mid-stream ${KILLS} times: the switch goes on and frees everything each time`, { skip, timeout: 120000 + KILLS * 2000 }, async () => {
    const sink = guest('sink', 'vale1:sink');
    await firstLine(sink);
    const rounds = 30 * KILLS; // keeps the pair busy for as long as the kills take
    const pair = [guest('exchange', 'vale1:ok3', `3,4,${rounds},100,10`, 'vale1:ok4'), guest('exchange', 'vale1:ok4', `4,3,${rounds},100,10`, 'vale1:ok3')];
    const pairDone = Promise.all(pair.map(result));
    await waitFor('only the sink and the pair on vale1', async () => ((await ctlRequest(socket, 'list', { switch: 'vale1' })) as { name: string }[]).map((p) => p.name).sort().join() === 'vale1:ok3,vale1:ok4,vale1:sink', 10000);
    // linear memory and memfds/eventfds; not sockets (the daemon closes its end of a dead
    // guest's control connection whenever its event loop gets to it)
    const mem = async () => { const m = await ctlRequest(socket, 'memory') as { allocated: number; fds: number }; return { allocated: m.allocated, fds: m.fds }; };
    // compared only while the other ports are the same before and after the reading: on a
    // loaded machine the pair may finish its rounds before the last kill (then a new baseline)
    const ports = async () => ((await ctlRequest(socket, 'list', { switch: 'vale1' })) as { name: string }[]).map((p) => p.name).sort().join();
    const steady = async () => { const l1 = await ports(), m = await mem(), l2 = await ports(); return l1 === l2 ? { ports: l1, m } : null; };
    let before = await steady(), compared = 0;
    for (let i = 0; i < KILLS; i++) {
      before ??= await steady();
      const c = guest('blast', 'vale1:blaster');
      await firstLine(c);
      await new Promise((r) => setTimeout(r, 50));
      c.kill('SIGKILL');
      await result(c);
      await waitFor('port reclaimed', async () => !((await ctlRequest(socket, 'list', { switch: 'vale1' })) as { name: string }[]).some((p) => p.name === 'vale1:blaster'));
      const now = await steady();
      if (before && now && now.ports === before.ports) {
        assert.deepEqual(now.m, before.m, `after kill ${i + 1}: memory and descriptors back to where they were`);
        compared++;
      } else before = null;
    }
    assert.ok(compared >= KILLS - 2, `memory compared after ${compared} of ${KILLS} kills`);
    const [ra, rb] = await pairDone;
    assert.equal(ra.code, 0, ra.err); assert.equal(rb.code, 0, rb.err);
    assert.equal(JSON.parse(ra.out).got, rounds * 100, 'the other guests on the switch lost nothing'); assert.equal(JSON.parse(rb.out).got, rounds * 100);
    sink.kill('SIGKILL');
    await result(sink);
    const gone = (await stats('vale1')).guestsGone.filter((g) => g.name === 'vale1:blaster');
    assert.equal(gone.length, KILLS);
    for (const g of gone) { assert.deepEqual(g.audit, []); assert.match(g.reason, /closed its socket/); }
    assert.ok(gone.every((g) => g.stats.txPackets > 0), 'each guest was sending when it was killed');
  });

  test('a guest receives exactly two memfds: its region and its CSB page, sealed', { skip, timeout: 30000 }, async () => {
    const r = await result(guest('probe', 'vale1:probe'));
    assert.equal(r.code, 0, r.err);
    const j = JSON.parse(r.out) as { memfds: string[]; mapped: string[]; resize: string[] };
    assert.deepEqual(j.memfds, [], 'the guest closed the memfds after mapping them (only mappings remain)');
    assert.equal(j.mapped.length, 2, `two memfd mappings: ${j.mapped.join('; ')}`);
    assert.ok(j.mapped.some((m) => m.startsWith('/memfd:wasmap:vale1:probe ')), 'the region of its own port');
    assert.ok(j.mapped.includes('/memfd:wasmap-csb:vale1:probe 4096'), 'its CSB page');
    // sealed: a guest that shrank its region would make the switch fault on its next access
    assert.deepEqual(j.resize, ['EPERM', 'EPERM'], 'the guest cannot resize either memfd');
  });
}

// Hostile control clients against a real switch daemon process (`wasmap switch`), while a
// bystander pair of passthrough ports (two guests in a child process) keeps forwarding
// numbered frames through the switch. Bursts of: random bytes, random JSON of random shapes,
// requests with random verbs and argument types (and every verb's arguments with every wrong
// type), deep nesting, lines over the 48 MiB limit without newline, dripping clients, more
// connections than allowed, half-closed connections and pipelined floods. After each burst:
// the daemon answers ping (the longest wait is reported), its RSS and fd count stay bounded
// (/proc/PID/status, /proc/PID/fd), every request line got exactly one reply or its
// connection was closed with a reason, and the switch's counters are conserved (sent =
// received + counted drops, with the counters of ports detached or reclaimed meanwhile).
// At the end the bystander's frames all arrived, intact and in order.
// WASMAP_FUZZ_SCALE (default 1) scales the bursts, WASMAP_FUZZ_SEED chooses the run.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, ChildProcess } from 'node:child_process';
import { createConnection, Socket } from 'node:net';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ctlRequest } from '../../src/ctl/client.js';
import { loadHost, hostMissingReason } from '../../src/host.js';
import { PtGuest } from '../../src/guest.js';
import { startDaemonProcess, exited } from '../integration/daemon-proc.js';

const ROLE = process.env.WASMAP_CTL_FUZZ_ROLE;
const SELF = fileURLToPath(import.meta.url);

// ---- the bystander: two passthrough guests exchanging numbered frames, in bursts ------------
function frame(from: number, to: number, seq: number): Uint8Array {
  const len = 60 + (seq % 240);
  const f = new Uint8Array(len);
  f.set([2, 0, 0, 0, 0xfe, to], 0); f.set([2, 0, 0, 0, 0xfe, from], 6); f[12] = 0x88; f[13] = 0xb5;
  new DataView(f.buffer).setUint32(14, seq, true);
  for (let i = 18; i < len; i++) f[i] = (seq * 13 + i + from) & 255;
  return f;
}
function bad(f: Uint8Array, from: number, seq: number): string | null {
  if (f[11] !== from) return `a frame from ${f[11]} where ${from} was expected`;
  const got = new DataView(f.buffer, f.byteOffset).getUint32(14, true);
  if (got !== seq) return `sequence ${got}, expected ${seq}`;
  if (f.length !== 60 + (seq % 240)) return `frame ${seq} is ${f.length} bytes, sent ${60 + (seq % 240)}`;
  for (let i = 18; i < f.length; i++) if (f[i] !== ((seq * 13 + i + from) & 255)) return `byte ${i} of frame ${seq} corrupted`;
  return null;
}
function bystander(): void {
  const sock = process.env.WASMAP_CTL_FUZZ_SOCKET!, stop = process.env.WASMAP_CTL_FUZZ_STOP!;
  const g = [PtGuest.connect(sock, 'vale0:by1', { slots: 256 }), PtGuest.connect(sock, 'vale0:by2', { slots: 256 })];
  const sent = [0, 0], got = [0, 0];
  let maxBurstMs = 0, bursts = 0;
  process.stdout.write(JSON.stringify({ ready: true }) + '\n');
  while (!existsSync(stop)) {
    for (const dir of [0, 1]) {
      const tx = g[dir], rx = g[1 - dir], me = dir + 1, peer = 2 - dir;
      const t0 = performance.now(), target = sent[dir] + 32;
      while (sent[dir] < target) {
        const batch: Uint8Array[] = [];
        for (let s = sent[dir]; s < target; s++) batch.push(frame(me, peer, s));
        const n = tx.send(batch);
        sent[dir] += n;
        if (n < batch.length) tx.wait('tx', 50);
        if (performance.now() - t0 > 10000) throw new Error(`stalled sending: ${sent[dir]} of ${target}`);
      }
      while (got[dir] < sent[dir]) {
        const fs = rx.recv();
        for (const f of fs) { const e = bad(f, me, got[dir]); if (e) throw new Error(e); got[dir]++; }
        if (fs.length === 0) rx.wait('rx', 50);
        if (performance.now() - t0 > 10000) throw new Error(`stalled receiving: ${got[dir]} of ${sent[dir]}`);
      }
      maxBurstMs = Math.max(maxBurstMs, performance.now() - t0);
      bursts++;
    }
  }
  for (const x of g) x.close();
  process.stdout.write(JSON.stringify({ sent, got, bursts, maxBurstMs }) + '\n');
}

// ---- the fuzzer -----------------------------------------------------------------------------
if (ROLE === 'bystander') bystander();
else {
  const SCALE = Math.max(0.05, Number(process.env.WASMAP_FUZZ_SCALE ?? 1));
  const SEED = Number(process.env.WASMAP_FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31)) >>> 0;
  const skip = loadHost() ? false : `the bystander guests need the native host: ${hostMissingReason()}`;
  const LIMITS = { maxConnections: 24, maxInFlight: 8, lineTimeoutMs: 1500 };
  const MAX_REQUEST = 48 << 20;
  const RSS_ALLOWANCE_MIB = 6 * (MAX_REQUEST >> 20) + 64; // what the daemon may take from the system, at most
  const REASONS = new Set(['EMSGSIZE', 'ETIMEDOUT', 'ENOBUFS', 'EBUSY']);

  const dir = mkdtempSync(join(tmpdir(), 'wasmap-ctlfz-'));
  const procs: ChildProcess[] = [];
  after(() => { for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL'); rmSync(dir, { recursive: true, force: true }); });

  let s = SEED || 1;
  const r = (n: number) => { s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0; return s % n; };
  const pick = <T>(a: readonly T[]): T => a[r(a.length)];
  const str = (n: number) => { let o = ''; const cs = 'abcdefghijklmnopqrstuvwxyz0123456789_-.:/ "\\\u00e9\u4e2d\u0000\n'; for (let i = 0; i < n; i++) o += cs[r(cs.length)]; return o; };
  const name = () => `fz${r(6)}`;

  // values a hostile client may put anywhere; nothing here names a real host interface or a
  // file outside this run's directory
  const junk = (): unknown => pick<() => unknown>([
    () => null, () => true, () => 0, () => -1, () => 1.5, () => 2 ** 53, () => -0, () => 1e308,
    () => '', () => str(r(20)), () => 'x'.repeat(70000), () => [], () => [1, 'a', null], () => ({}), () => ({ a: { b: [] } }),
    () => '__proto__', () => ({ __proto__: { polluted: 1 } }), () => '\u0000', () => 'vale0', () => 'vale0:by1x',
  ])();
  const ports = () => pick<() => unknown>([
    () => name(), () => `vale0:${name()}`, () => 'tap:', () => 'tap:bad/name', () => `tap:${'x'.repeat(20)}`, () => 'af_packet:', () => 'af_packet:a b',
    () => 'tap:a:b', () => 'netmap:eth0', () => `vhost-user:${join(dir, `vu${r(3)}.sock`)}`, () => 'vhost-user:', () => 'vhost-user:/proc/none/x.sock', () => 'vale1:x', junk,
  ])();
  // (the daemon runs in this run's directory too, so even a relative path lands there)
  const files = () => pick<() => unknown>([() => join(dir, `c${r(4)}.pcap`), () => '', () => join(dir, 'no/dir/x.pcap'), () => '/proc/none/x.pcap', () => { const j = junk(); return typeof j === 'string' ? join(dir, 'j.pcap') : j; }])();
  const VERBS = ['attach', 'detach', 'list', 'stats', 'newif', 'delif', 'pt-open', 'pt-close', 'capture', 'capture-status', 'capture-stop', 'set-lookup', 'memory', 'ping'];
  const argFor = (k: string): unknown => {
    if (r(4) === 0 && k !== 'file') return junk();
    switch (k) {
      case 'switch': return pick(['vale0', 'vale0', 'vale1', 'vale0:x', '']);
      case 'port': return ports();
      case 'name': return pick([name(), `p${r(4)}`, 'vale0x', 'byx', `${str(8)}/`]); // a bounded set of valid names
      case 'file': return files();
      case 'count': return pick([0, 1, 5, -1, 1.5, 1e12]);
      case 'module': return pick(['default', '', '!!!', Buffer.from(str(40)).toString('base64'), 'AGFzbQEAAAA=']);
      case 'config': return pick(['{}', '[', '{"rules":[]}', 7]);
      case 'fallback': return pick(['drop', 'learning', 'x']);
      case 'vnetHdr': return pick([0, 10, 12, 7, -1]);
      case 'accept': return pick(['csum,tso4', 'bogus', '']);
      case 'slots': return pick([64, 0, -1, 1e9, 2.5, 4096]);
      case 'bufSize': return pick([2048, 0, 1e9, 65536, 100]);
      case 'reason': return str(r(30));
      default: return junk();
    }
  };
  const KEYS: Record<string, string[]> = {
    attach: ['switch', 'port', 'name', 'vnetHdr', 'accept'], detach: ['switch', 'port'], list: ['switch'], stats: ['switch'],
    newif: ['name'], delif: ['name'], 'pt-open': ['switch', 'port', 'slots', 'bufSize'], 'pt-close': ['switch', 'port', 'reason'],
    capture: ['switch', 'port', 'file', 'count'], 'capture-status': ['switch', 'port'], 'capture-stop': ['switch', 'port'],
    'set-lookup': ['switch', 'module', 'config', 'fallback', 'name'], memory: [], ping: [],
  };
  const randomJson = (depth: number): unknown => {
    if (depth > 6 || r(3) === 0) return junk();
    if (r(2)) return Array.from({ length: r(5) }, () => randomJson(depth + 1));
    const o: Record<string, unknown> = {};
    for (let i = r(5); i > 0; i--) o[pick(['verb', 'args', 'id', 'stop', 'ctl', 'fatal', str(4)])] = randomJson(depth + 1);
    return o;
  };
  const request = (): string => {
    const verb = r(6) === 0 ? pick(['', 'stop', 'frobnicate', 'x'.repeat(65), '__proto__', 'constructor', str(6), 'toString']) : pick(VERBS);
    const args: Record<string, unknown> = {};
    for (const k of Object.hasOwn(KEYS, verb) ? KEYS[verb] : []) if (r(5)) args[k] = argFor(k);
    if (r(8) === 0) args[str(3)] = junk();
    const o: Record<string, unknown> = { verb, args: r(10) === 0 ? junk() : args };
    if (r(3)) o.id = r(4) ? r(1e6) : junk();
    if (r(10) === 0) o[pick(['stop', 'ctl', 'fatal'])] = pick([true, 'stop', 'x']);
    return JSON.stringify(o);
  };

  interface Client { c: Socket; lines: string[]; buf: string; closed: boolean; sentLines: number; tail: boolean }
  /** A connection that counts the lines it sent and the replies it got. */
  const open = (sock: string) => new Promise<Client>((resolve) => {
    const c = createConnection(sock);
    const k: Client = { c, lines: [], buf: '', closed: false, sentLines: 0, tail: false };
    c.setEncoding('utf8');
    c.on('data', (d: string) => { k.buf += d; let nl; while ((nl = k.buf.indexOf('\n')) >= 0) { k.lines.push(k.buf.slice(0, nl)); k.buf = k.buf.slice(nl + 1); } });
    c.on('error', () => undefined);
    c.on('close', () => { k.closed = true; });
    c.once('connect', () => resolve(k));
    c.once('close', () => resolve(k));
  });
  const send = (k: Client, data: string | Buffer) => {
    if (k.closed || k.c.destroyed) return;
    const b = typeof data === 'string' ? Buffer.from(data) : data;
    for (const x of b) if (x === 10) k.sentLines++;
    if (b.length) k.tail = b[b.length - 1] !== 10; // an unfinished line at the end
    k.c.write(b);
  };
  const settle = async (ks: Client[], ms: number) => {
    const end = Date.now() + ms;
    while (Date.now() < end && ks.some((k) => !k.closed && k.lines.length < k.sentLines)) await new Promise((res) => setTimeout(res, 5));
  };
  const checkReplies = (k: Client, what: string, halfClosed = false) => {
    const want = k.sentLines + (halfClosed && k.tail ? 1 : 0);
    const replies = k.lines.map((l) => { try { return JSON.parse(l) as { ok: boolean; error?: { code: string } }; } catch { return assert.fail(`${what}: a reply that is not JSON: ${l.slice(0, 200)}`); } });
    for (const x of replies) assert.equal(typeof x.ok, 'boolean', `${what}: a reply without ok`);
    if (replies.length === want) return;
    const last = replies[replies.length - 1];
    assert.ok(k.closed && replies.length <= want + 1 && last && !last.ok && REASONS.has(last.error!.code),
      `${what}: ${want} request lines, ${replies.length} replies, ${k.closed ? 'closed' : 'open'}; last: ${k.lines[k.lines.length - 1]?.slice(0, 200)}`);
  };

  test(`ctl-hostile fuzz: hostile control clients against a daemon with a bystander pair (seed ${SEED})`, { skip, timeout: 300000 }, async () => {
    const sock = join(dir, 'ctl.sock'), stopFile = join(dir, 'stop');
    const d = await startDaemonProcess(['vale0', '--socket', sock, '--spin-us', '2000'], { env: { WASMAP_CTL_LIMITS: JSON.stringify(LIMITS) }, cwd: dir });
    procs.push(d);
    const pid = d.pid!;
    const status = () => {
      const t = readFileSync(`/proc/${pid}/status`, 'utf8');
      return { rss: Number(/^VmRSS:\s+(\d+)/m.exec(t)![1]) >> 10, fds: readdirSync(`/proc/${pid}/fd`).length };
    };
    const by = spawn(process.execPath, [SELF], { env: { ...process.env, WASMAP_CTL_FUZZ_ROLE: 'bystander', WASMAP_CTL_FUZZ_SOCKET: sock, WASMAP_CTL_FUZZ_STOP: stopFile }, stdio: ['ignore', 'pipe', 'pipe'] });
    procs.push(by);
    let byOut = '', byErr = '';
    by.stdout!.on('data', (x) => { byOut += x; }); by.stderr!.on('data', (x) => { byErr += x; });
    const t0 = Date.now();
    while (!byOut.includes('ready')) { assert.ok(Date.now() - t0 < 15000 && by.exitCode === null, `bystander did not start: ${byErr}`); await new Promise((res) => setTimeout(res, 20)); }
    await new Promise((res) => setTimeout(res, 300));
    const base = status();
    const dpAllocated = async () => ((await ctlRequest(sock, 'memory', {}, 20000)) as { allocated: number }).allocated;
    const allocBase = await dpAllocated();
    const facts = { ops: 0, bursts: 0, longestPingMs: 0, longestBurstMs: 0, rssPeakMiB: base.rss, fdsMax: base.fds, refusedBusy: 0, cutOff: 0, detachedStats: [] as Record<string, number>[] };
    const fail = (m: string) => assert.fail(`seed ${SEED}: ${m}\ndaemon: ${d.output().slice(-3000)}`);

    const conservation = async (when: string) => {
      type P = Record<string, number>;
      const st = ((await ctlRequest(sock, 'stats', { switch: 'vale0' }, 20000)) as { floodExtra: number; segExtra: number; ports: P[]; guestsGone: { stats: P }[] }[])[0];
      const all = [...st.ports, ...st.guestsGone.map((g) => g.stats), ...facts.detachedStats];
      const sum = (f: (p: P) => number) => all.reduce((n, p) => n + f(p), 0);
      const sent = sum((p) => p.txPackets), rcvd = sum((p) => p.rxPackets);
      const drops = sum((p) => p.dropFull + p.dropBroken + p.dropNoDst + p.dropLookup + p.dropSize + p.dropHdr);
      if (sent + st.floodExtra + st.segExtra !== rcvd + drops) fail(`${when}: conservation: sent ${sent} + flood ${st.floodExtra} + seg ${st.segExtra} != received ${rcvd} + drops ${drops}`);
    };
    const collect = (k: Client) => { // remember the counters of ports these replies detached
      for (const l of k.lines) {
        try {
          const x = JSON.parse(l) as { ok: boolean; result?: { stats?: Record<string, number>; reason?: string } };
          if (x.ok && x.result?.stats && x.result.reason === undefined && typeof x.result.stats.txPackets === 'number') facts.detachedStats.push(x.result.stats);
        } catch { /* checked elsewhere */ }
      }
    };
    const after = async (what: string, started: number) => {
      const p0 = performance.now();
      let pong: unknown;
      for (let busy = 0; ; busy++) { // connections just closed by us may not be released yet
        try { pong = await ctlRequest(sock, 'ping', {}, 10000); break; } catch (e) {
          if ((e as { code?: string }).code !== 'EBUSY' || busy > 100) fail(`after ${what}: ping failed: ${(e as Error).message}`);
          await new Promise((res) => setTimeout(res, 20));
        }
      }
      const pingMs = performance.now() - p0;
      if (!(pong as { pong?: boolean }).pong) fail(`after ${what}: no pong`);
      facts.longestPingMs = Math.max(facts.longestPingMs, pingMs);
      facts.longestBurstMs = Math.max(facts.longestBurstMs, performance.now() - started);
      const st = status();
      facts.rssPeakMiB = Math.max(facts.rssPeakMiB, st.rss); facts.fdsMax = Math.max(facts.fdsMax, st.fds);
      // a line over the limit is held up to 48 MiB before the cut; freed memory stays with the
      // allocator for a while: a bound, and (below) no growth from round to round
      if (st.rss > base.rss + RSS_ALLOWANCE_MIB) fail(`after ${what}: RSS ${st.rss} MiB (started at ${base.rss})`);
      if (d.exitCode !== null) fail(`after ${what}: the daemon exited ${d.exitCode}`);
      if (by.exitCode !== null) fail(`after ${what}: the bystander exited ${by.exitCode}: ${byErr}`);
      await conservation(`after ${what}`);
      facts.bursts++;
    };

    const bursts: [string, (n: number) => Promise<void>][] = [
      ['random bytes', async (n) => {
        const ks = await Promise.all(Array.from({ length: 3 }, () => open(sock)));
        for (let i = 0; i < n; i++) { const k = pick(ks); const b = Buffer.alloc(1 + r(300)); for (let j = 0; j < b.length; j++) b[j] = r(8) === 0 ? 10 : r(256); send(k, b); facts.ops++; }
        for (const k of ks) send(k, '\n');
        await settle(ks, 5000);
        for (const k of ks) { checkReplies(k, 'random bytes'); k.c.destroy(); }
      }],
      ['random JSON', async (n) => {
        const k = await open(sock);
        for (let i = 0; i < n; i++) { send(k, JSON.stringify(randomJson(0)) + '\n'); facts.ops++; }
        await settle([k], 5000); checkReplies(k, 'random JSON'); collect(k); k.c.destroy();
      }],
      ['random requests', async (n) => {
        const ks = await Promise.all(Array.from({ length: 4 }, () => open(sock)));
        for (let i = 0; i < n; i++) { send(pick(ks), request() + '\n'); facts.ops++; }
        await settle(ks, 10000);
        for (const k of ks) { checkReplies(k, 'random requests'); collect(k); k.c.destroy(); }
      }],
      ['wrong types for every argument of every verb', async () => {
        const k = await open(sock);
        const base: Record<string, Record<string, unknown>> = {
          attach: { switch: 'vale0', port: 'fzw' }, detach: { switch: 'vale0', port: 'fzw' }, list: { switch: 'vale0' }, stats: { switch: 'vale0' },
          newif: { name: 'fzwp' }, delif: { name: 'fzwp' }, 'pt-open': { switch: 'vale0', port: 'fzwpt', slots: 64 }, 'pt-close': { switch: 'vale0', port: 'fzwpt', reason: 'x' },
          capture: { switch: 'vale0', port: 'fzw', file: join(dir, 'w.pcap'), count: 0 }, 'capture-status': { switch: 'vale0', port: 'fzw' }, 'capture-stop': { switch: 'vale0', port: 'fzw' },
          'set-lookup': { switch: 'vale0', module: 'default' }, memory: {}, ping: {},
        };
        const wrong = [null, 0, -1, 1.5, true, [], {}, '', '\u0000', 'x'.repeat(5000), { toString: 'x' }, [['deep']]];
        for (const verb of VERBS) for (const key of [...KEYS[verb], 'extra']) for (const w of wrong) { send(k, JSON.stringify({ id: facts.ops, verb, args: { ...base[verb], [key]: w } }) + '\n'); facts.ops++; }
        await settle([k], 20000); checkReplies(k, 'wrong types'); collect(k); k.c.destroy();
      }],
      ['deep nesting', async (n) => {
        const k = await open(sock);
        for (let i = 0; i < n; i++) {
          const depth = pick([31, 32, 33, 100, 5000, 200000]);
          const inner = r(2) ? `${'['.repeat(depth)}${']'.repeat(depth)}` : `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`;
          send(k, `{"id":${i},"verb":"${pick(VERBS)}","args":{"switch":"vale0","x":${inner}}}\n`); facts.ops++;
        }
        await settle([k], 10000); checkReplies(k, 'deep nesting'); collect(k); k.c.destroy();
      }],
      ['a line over the limit without newline', async () => {
        const k = await open(sock);
        const chunk = Buffer.alloc(4 << 20, pick([0x61, 0x5b, 0x22, 0x20]));
        let sent = 0;
        while (!k.closed && sent < MAX_REQUEST + (8 << 20)) {
          if (!k.c.write(chunk)) await new Promise<void>((res) => { const t = setTimeout(res, 100); k.c.once('drain', () => { clearTimeout(t); res(); }); });
          sent += chunk.length;
        }
        facts.ops++;
        const end = Date.now() + 5000;
        while (!k.closed && Date.now() < end) await new Promise((res) => setTimeout(res, 10));
        if (!k.closed || !/"EMSGSIZE"/.test(k.lines[0] ?? '')) fail(`over the limit: closed=${k.closed} reply=${k.lines[0]}`);
        facts.cutOff++;
        k.c.destroy();
      }],
      ['dripping clients', async (n) => {
        const ks = await Promise.all(Array.from({ length: Math.min(n, 6) }, () => open(sock)));
        const t = setInterval(() => { for (const k of ks) if (!k.closed) k.c.write(pick(['{', '"', 'a', ' ', '['])); }, 50);
        const end = Date.now() + LIMITS.lineTimeoutMs + 3000;
        while (ks.some((k) => !k.closed) && Date.now() < end) await new Promise((res) => setTimeout(res, 20));
        clearInterval(t);
        facts.ops += ks.length;
        for (const k of ks) { if (!k.closed || !/"ETIMEDOUT"/.test(k.lines[0] ?? '')) fail(`a dripping client: closed=${k.closed} reply=${k.lines[0]}`); facts.cutOff++; }
      }],
      ['many connections', async () => {
        const ks = await Promise.all(Array.from({ length: LIMITS.maxConnections + 8 }, () => open(sock)));
        await new Promise((res) => setTimeout(res, 200));
        for (const k of ks) if (!k.closed) send(k, '{"verb":"ping"}\n');
        await settle(ks, 5000);
        for (const k of ks) {
          facts.ops++;
          if (k.closed && /"EBUSY"/.test(k.lines[0] ?? '')) { facts.refusedBusy++; continue; }
          checkReplies(k, 'many connections');
        }
        if (facts.refusedBusy === 0) fail('no connection beyond the limit was refused');
        for (const k of ks) k.c.destroy();
      }],
      ['half-closed connections', async (n) => {
        const ks = await Promise.all(Array.from({ length: 4 }, () => open(sock)));
        for (let i = 0; i < n; i++) { const k = pick(ks); send(k, r(4) ? request() + '\n' : str(r(10))); facts.ops++; }
        for (const k of ks) k.c.end();
        const end = Date.now() + 10000;
        while (ks.some((k) => !k.closed) && Date.now() < end) await new Promise((res) => setTimeout(res, 10));
        for (const k of ks) { if (!k.closed) fail('a half-closed connection was never closed'); checkReplies(k, 'half-closed', true); collect(k); }
      }],
      ['a pipelined flood not read for a while', async (n) => {
        const k = await open(sock);
        k.c.pause();
        let text = '';
        for (let i = 0; i < n * 4; i++) { text += r(2) ? `{"id":${i},"verb":"ping"}\n` : `{"id":${i},"verb":"stats"}\n`; facts.ops++; }
        send(k, text);
        await new Promise((res) => setTimeout(res, 300));
        k.c.resume();
        await settle([k], 20000); checkReplies(k, 'pipelined flood'); k.c.destroy();
      }],
    ];

    const rounds = Math.max(1, Math.round(2 * SCALE));
    const roundRss: number[] = [], roundAlloc: number[] = [];
    for (let round = 0; round < rounds; round++) {
      for (const [what, run] of bursts) {
        if (what === 'a line over the limit without newline' && round > 0 && SCALE < 5) continue; // ~0.5 s each
        const n = Math.max(5, Math.round((40 + r(80)) * Math.min(SCALE, 25)));
        const started = performance.now();
        try { await run(n); } catch (e) { if (e instanceof assert.AssertionError && !e.message.startsWith('seed')) fail(`${what}: ${e.message}`); throw e; }
        await after(what, started);
      }
      roundRss.push(status().rss);
      roundAlloc.push(((await dpAllocated()) - allocBase) >> 20);
    }
    // no growth from round to round beyond the allocator's slack (the first rounds warm it up)
    if (roundRss.length >= 4) {
      const early = Math.max(...roundRss.slice(0, Math.ceil(roundRss.length / 2)));
      const late = roundRss[roundRss.length - 1];
      if (late > early + 96) fail(`RSS grows round after round: ${roundRss.join(' ')} MiB`);
    }
    // everything a client left is gone: connections closed, fds back to where they were
    const end = Date.now() + 5000;
    while (status().fds > base.fds + 2 && Date.now() < end) await new Promise((res) => setTimeout(res, 20));
    if (status().fds > base.fds + 2) fail(`fds ${status().fds}, started with ${base.fds}`);

    writeFileSync(stopFile, '');
    const code = await exited(by);
    if (code !== 0) fail(`bystander exited ${code}: ${byErr}`);
    const b = JSON.parse(byOut.trim().split('\n').pop()!) as { sent: number[]; got: number[]; bursts: number; maxBurstMs: number };
    assert.deepEqual(b.got, b.sent, 'every bystander frame arrived, intact and in order');
    assert.ok(b.got[0] > 0 && b.got[1] > 0, 'the bystander pair forwarded during the fuzz');
    const until2 = Date.now() + 5000;
    for (;;) { // the bystanders' ports are reclaimed with their counters
      const st = ((await ctlRequest(sock, 'stats', { switch: 'vale0' })) as { ports: { name: string; kind: string }[] }[])[0];
      const left = st.ports.filter((p) => p.name === 'by1' || p.name === 'by2');
      if (!left.length) break;
      if (Date.now() > until2) fail(`bystander ports not reclaimed: ${JSON.stringify(left)}`);
      await new Promise((res) => setTimeout(res, 20));
    }
    await conservation('at the end');
    d.kill('SIGTERM');
    assert.equal(await exited(d), 0, d.output().slice(-2000));
    console.log(`fuzz ctl-hostile: seed=${SEED} ops=${facts.ops} longest_round_ms=${facts.longestBurstMs.toFixed(1)} longest_ping_ms=${facts.longestPingMs.toFixed(1)} bursts=${facts.bursts} rss_base_mib=${base.rss} rss_peak_mib=${facts.rssPeakMiB} rss_rounds_mib=${roundRss.join(',')} dp_alloc_rounds_mib=${roundAlloc.join(',')} fds_base=${base.fds} fds_max=${facts.fdsMax} refused_busy=${facts.refusedBusy} cut_off=${facts.cutOff} bystander_frames=${b.got[0] + b.got[1]} bystander_longest_burst_ms=${b.maxBurstMs.toFixed(1)} conservation=ok`);
  });
}

// The switch under sustained traffic from wasm generators: ports come and go between rounds,
// and every frame ever taken from a tx ring is still accounted for.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Datapath } from '../../src/datapath.js';
import { Switch, conservation, PortStats, SwitchPort } from '../../src/switch.js';
import { Generator, TrafficPlan } from '../../src/gen.js';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Runner } from '../../src/runner.js';
import { loadHost } from '../../src/host.js';
import { prometheus } from '../../src/ctl/metrics.js';

const mac = (i: number) => `02:00:00:00:01:${i.toString(16).padStart(2, '0')}`;

test('attach and detach ports while traffic flows: no crash, no lost buffer, every frame counted', () => {
  const dp = new Datapath();
  const sw = new Switch(dp, 'vale9');
  const base = dp.allocated;
  const gone: PortStats[] = [];
  const stable = [sw.attach('s0'), sw.attach('s1')];
  const gens = [new Generator(dp, { srcMac: mac(0), dstMac: mac(1) }), new Generator(dp, { srcMac: mac(1), dstMac: mac(0) })];
  const sinks = [new Generator(dp), new Generator(dp)];
  let transient: SwitchPort[] = [];
  let sinkRx = 0;
  for (let cycle = 0; cycle < 60; cycle++) {
    // transient ports: some sending to the stable ones, some receiving floods and unicast
    const tgens = transient.map((_, i) => new Generator(dp, { srcMac: mac(16 + i), dstMac: i % 2 ? mac(0) : 'ff:ff:ff:ff:ff:ff' }));
    const tsinks = transient.map(() => new Generator(dp));
    // and one generator aims at a transient port explicitly, so frames are in flight to it when it goes
    const explicit = transient[0] ? [new Generator(dp, { srcMac: mac(2), dstMac: mac(16), slotFlags: (transient[0].index + 1) << 8 })] : [];
    const plan = new TrafficPlan(dp, sw.sw,
      [...gens.map((gen, i) => ({ gen, kring: stable[i].tx.kring, burst: 64 })), ...tgens.map((gen, i) => ({ gen, kring: transient[i].tx.kring, burst: 32 })),
        ...explicit.map((gen) => ({ gen, kring: stable[0].tx.kring, burst: 8 }))],
      [...sinks.map((gen, i) => ({ gen, kring: stable[i].rx.kring })), ...tsinks.map((gen, i) => ({ gen, kring: transient[i].rx.kring }))]);
    sinkRx += plan.run(20 + (cycle % 7));
    // queue more, then detach some transient ports with frames still queued toward them
    for (const [i, g] of explicit.entries()) g.fill(stable[0].tx.kring, 16 + i);
    const leaving = transient.filter((_, i) => (i + cycle) % 2 === 0);
    for (const p of leaving) {
      assert.deepEqual(p.region.audit(), [], `buffers of ${p.name} intact before detach`);
      gone.push(sw.detach(p.name));
    }
    transient = transient.filter((p) => !leaving.includes(p));
    sw.round();
    plan.close(); for (const g of [...tgens, ...tsinks, ...explicit]) g.close();
    while (transient.length < 1 + (cycle % 5)) transient.push(sw.attach(`t${cycle}_${transient.length}`));
    const law = conservation(sw.stats(), gone);
    assert.ok(law.ok, `cycle ${cycle}: sent ${law.sent} + flood ${law.floodExtra} = received ${law.received} + drops ${law.drops}`);
  }
  for (const p of sw.list()) assert.deepEqual(p.region.audit(), []);
  const final = conservation(sw.stats(), gone);
  assert.ok(final.sent > 10000n, `traffic flowed (${final.sent} frames)`);
  assert.ok(sinkRx > 0);
  const drops = [...sw.stats().ports, ...gone].reduce((n, p) => n + p.dropNoDst, 0n);
  assert.ok(drops > 0n, 'frames aimed at departed ports were counted as no-destination drops');
  for (const g of [...gens, ...sinks]) g.close();
  sw.destroy();
  assert.ok(dp.allocated <= base, 'destroying the switch returned its memory');
});

test('traffic between two ports runs at full rate with no drops after learning', () => {
  const dp = new Datapath();
  const sw = new Switch(dp, 'vale8');
  const a = sw.attach('a'), b = sw.attach('b');
  const ga = new Generator(dp, { srcMac: mac(1), dstMac: mac(2) }), gb = new Generator(dp, { srcMac: mac(2), dstMac: mac(1) });
  const sa = new Generator(dp), sb = new Generator(dp);
  const plan = new TrafficPlan(dp, sw.sw, [{ gen: ga, kring: a.tx.kring, burst: 256 }, { gen: gb, kring: b.tx.kring, burst: 256 }],
    [{ gen: sa, kring: a.rx.kring }, { gen: sb, kring: b.rx.kring }]);
  plan.run(2000);
  ga.budget = 0; gb.budget = 0; plan.run(2);
  const st = sw.stats(), law = conservation(st);
  assert.ok(law.ok);
  assert.equal(law.drops, 0n);
  assert.equal(sa.rxPackets + sb.rxPackets, ga.txPackets + gb.txPackets + st.floodExtra);
  assert.equal(st.learned, 2n);
  assert.equal(ga.txPackets, 2000n * 256n);
  sw.destroy();
});

// ---- host and vhost-user ports named as Linux names them (#15 finding 12) -----------------
// '-' and '.' are ordinary characters of an interface name: the runner must not read them
// as netmap's ring suffix ('vale0:rb-v0' is ring 'v0' of port rb to a netmap parser).
const netWhy = process.getuid?.() !== 0 ? 'needs root (TAP, veth)' : !existsSync('/dev/net/tun') ? 'no /dev/net/tun' : !loadHost() ? 'native host not built'
  : spawnSync('sh', ['-c', 'command -v ip']).status !== 0 ? 'missing tool: ip (apt-get install iproute2)' : '';
const netRequired = process.env.WASMAP_REQUIRE_NET === '1';
if (netWhy && netRequired) test('host port name prerequisites', () => assert.fail(`WASMAP_REQUIRE_NET=1 but ${netWhy}`));

test("tap: and af_packet: ports whose interface names hold '-' and '.' attach, list, capture and detach", { skip: netWhy && !netRequired ? netWhy : false, timeout: 30000 }, () => {
  const P = `n${(process.pid % 9000) + 1000}`; // per-run prefix
  const sh = (cmd: string, ok = true) => { const r = spawnSync('sh', ['-c', cmd], { encoding: 'utf8' }); if (ok && r.status !== 0) throw new Error(`${cmd}: ${r.stderr}`); };
  const runner = new Runner(['vale0']);
  const tmp = mkdtempSync(join(tmpdir(), 'wasmap-names-'));
  try {
    sh(`ip link add ${P}-v0 type veth peer name ${P}.v1`);
    sh(`ip link set ${P}-v0 up && ip link set ${P}.v1 up`);
    const names = [`tap:${P}-t0`, `tap:${P}.t1`, `af_packet:${P}-v0`, `af_packet:${P}.v1`];
    for (const port of names) {
      const r = runner.handle({ verb: 'attach', args: { switch: 'vale0', port } });
      assert.ok(r.ok, `attach ${port}: ${JSON.stringify(r)}`);
      assert.equal((r.result as { name: string }).name, `vale0:${port.split(':')[1]}`);
      // fast by default: TAP and AF_PACKET ports carry the virtio-net header (TSO, partial
      // checksums) unless told otherwise
      assert.equal((r.result as { vnetHdr: number }).vnetHdr, 12, `${port}: default vnet header`);
    }
    // asked for none, a TAP has none
    const plain = runner.handle({ verb: 'attach', args: { switch: 'vale0', port: `tap:${P}-t2`, vnetHdr: 0 } });
    assert.ok(plain.ok, JSON.stringify(plain));
    assert.equal((plain.result as { vnetHdr: number }).vnetHdr, 0);
    assert.ok(runner.handle({ verb: 'detach', args: { switch: 'vale0', port: `tap:${P}-t2` } }).ok);
    // and an AF_PACKET port neither (the interface is free again once detached)
    assert.ok(runner.handle({ verb: 'detach', args: { switch: 'vale0', port: `af_packet:${P}.v1` } }).ok);
    const plainPk = runner.handle({ verb: 'attach', args: { switch: 'vale0', port: `af_packet:${P}.v1`, vnetHdr: 0 } });
    assert.ok(plainPk.ok, JSON.stringify(plainPk));
    assert.equal((plainPk.result as { vnetHdr: number }).vnetHdr, 0);
    const listed = (runner.handle({ verb: 'list', args: {} }) as { result: { name: string; kind: string; down: string | null }[] }).result;
    assert.deepEqual(listed.map((p) => p.name).sort(), names.map((n) => `vale0:${n.split(':')[1]}`).sort());
    const cap = runner.handle({ verb: 'capture', args: { switch: 'vale0', port: `af_packet:${P}-v0`, file: join(tmp, 'c.pcap') } });
    assert.ok(cap.ok, JSON.stringify(cap));
    for (let i = 0; i < 20; i++) runner.step();
    for (const port of names) {
      const r = runner.handle({ verb: 'detach', args: { switch: 'vale0', port } });
      assert.ok(r.ok, `detach ${port}: ${JSON.stringify(r)}`);
    }
    assert.equal(runner.vale.switch('vale0').list().length, 0);
    // a virtual port keeps netmap's reading: '-N' is a ring, not part of the name
    const v = runner.handle({ verb: 'attach', args: { switch: 'vale0', port: 'p-v0' } });
    assert.equal(v.ok, false);
  } finally {
    runner.close();
    sh(`ip link del ${P}-v0 2>/dev/null`, false);
    rmSync(tmp, { recursive: true, force: true });
  }
});

test("a vhost-user socket named vh-a.sock gets the port vale0:vh-a; a name too long for a port points at --name", { skip: loadHost() ? false : 'native host not built', timeout: 30000 }, () => {
  const runner = new Runner(['vale0']);
  const tmp = mkdtempSync(join(tmpdir(), 'wasmap-vhname-'));
  try {
    const r = runner.handle({ verb: 'attach', args: { switch: 'vale0', port: `vhost-user:${join(tmp, 'vh-a.sock')}` } });
    assert.ok(r.ok, JSON.stringify(r));
    assert.equal((r.result as { name: string }).name, 'vale0:vh-a');
    const r2 = runner.handle({ verb: 'attach', args: { switch: 'vale0', port: `vhost-user:${join(tmp, 'vm.v1-b.sock')}` } });
    assert.ok(r2.ok, JSON.stringify(r2));
    assert.equal((r2.result as { name: string }).name, 'vale0:vm.v1-b');
    const long = runner.handle({ verb: 'attach', args: { switch: 'vale0', port: `vhost-user:${join(tmp, 'a-very-long-socket-name.sock')}` } });
    assert.equal(long.ok, false);
    assert.match((long as { error: { message: string } }).error.message, /--name/);
    const named = runner.handle({ verb: 'attach', args: { switch: 'vale0', port: `vhost-user:${join(tmp, 'a-very-long-socket-name.sock')}`, name: 'vm-3' } });
    assert.ok(named.ok, JSON.stringify(named));
    for (const port of ['vh-a', 'vm.v1-b', 'vm-3']) assert.ok(runner.handle({ verb: 'detach', args: { switch: 'vale0', port } }).ok, `detach ${port}`);
    assert.equal(runner.vale.switch('vale0').list().length, 0);
  } finally {
    runner.close();
    rmSync(tmp, { recursive: true, force: true });
  }
});

test('an AF_PACKET port counts what the kernel dropped because its rx ring was full (PACKET_STATISTICS): sent = taken + overruns', { skip: netWhy && !netRequired ? netWhy : (spawnSync('python3', ['-V']).status === 0 ? false : 'needs python3 (apt-get install python3)'), timeout: 30000 }, () => {
  const P = `o${(process.pid % 9000) + 1000}`; // per-run prefix
  const sh = (cmd: string, ok = true) => { const r = spawnSync('sh', ['-c', cmd], { encoding: 'utf8' }); if (ok && r.status !== 0) throw new Error(`${cmd}: ${r.stderr}`); return r.stdout; };
  const runner = new Runner(['vale0']);
  const SENT = 3000; // the port's rx ring holds 120 frames: the switch does not run meanwhile
  try {
    sh(`ip link add ${P}a type veth peer name ${P}b`);
    for (const e of ['a', 'b']) sh(`sysctl -qw net.ipv6.conf.${P}${e}.disable_ipv6=1 && ip link set ${P}${e} up`); // no chatter of their own
    const r = runner.handle({ verb: 'attach', args: { switch: 'vale0', port: `af_packet:${P}a` } });
    assert.ok(r.ok, JSON.stringify(r));
    // a plain packet socket on the other end sends SENT 60-byte frames at once
    sh(`python3 -c "import socket; s=socket.socket(socket.AF_PACKET, socket.SOCK_RAW); s.bind(('${P}b', 0)); f=bytes([0xff]*6+[2,0,0,0,0,1]+[0x88,0xb5])+bytes(46); [s.send(f) for _ in range(${SENT})]"`);
    let taken = 0;
    for (let i = 0, idle = 0; i < 10000 && idle < 50; i++) { const n = runner.step(); taken += n; idle = n ? 0 : idle + 1; }
    const st = (runner.handle({ verb: 'stats', args: { switch: 'vale0' } }) as { result: { name: string; ports: { name: string; kind: string; kernelRx: number; ringOverruns: number; kernelDrops: number }[] }[] }).result;
    const port = st[0].ports.find((p) => p.name === `${P}a`)!;
    assert.ok(port.ringOverruns > 0, `the kernel dropped frames: ${port.ringOverruns}`);
    assert.equal(port.kernelRx + port.ringOverruns, SENT, `taken ${port.kernelRx} + overruns ${port.ringOverruns} = sent ${SENT}`);
    assert.ok(port.kernelDrops >= port.ringOverruns, 'overruns are part of kernelDrops');
    assert.match(prometheus(st as unknown as Parameters<typeof prometheus>[0]), new RegExp(`wasmap_port_ring_overruns_total\\{switch="vale0",port="${P}a"\\} ${port.ringOverruns}\n`), 'and in --prometheus');
  } finally {
    runner.close();
    sh(`ip link del ${P}a 2>/dev/null`, false);
  }
});

test('an AF_PACKET port takes frames of its own interface only, even while another interface floods as it is attached', { skip: netWhy && !netRequired ? netWhy : (spawnSync('python3', ['-V']).status === 0 ? false : 'needs python3 (apt-get install python3)'), timeout: 60000 }, async () => {
  const P = `q${(process.pid % 9000) + 1000}`;
  const sh = (cmd: string, ok = true) => { const r = spawnSync('sh', ['-c', cmd], { encoding: 'utf8' }); if (ok && r.status !== 0) throw new Error(`${cmd}: ${r.stderr}`); return r.stdout; };
  const runner = new Runner(['vale0']);
  const { spawn } = await import('node:child_process');
  let flood: ReturnType<typeof spawn> | null = null;
  try {
    for (const [a, b] of [['a', 'b'], ['x', 'y']]) sh(`ip link add ${P}${a} type veth peer name ${P}${b}`);
    for (const e of ['a', 'b', 'x', 'y']) sh(`sysctl -qw net.ipv6.conf.${P}${e}.disable_ipv6=1 && ip link set ${P}${e} up`);
    // a flood on the other pair, for as long as the attaches go on
    flood = spawn('python3', ['-c', `import socket; s=socket.socket(socket.AF_PACKET, socket.SOCK_RAW); s.bind(('${P}y', 0)); f=bytes([0xff]*6+[2,0,0,0,0,9]+[0x88,0xb5])+bytes(46)\nwhile True:\n  try: s.send(f)\n  except OSError: pass`], { stdio: 'ignore' });
    await new Promise((r) => setTimeout(r, 300));
    let stray = 0;
    for (let i = 0; i < 40; i++) {
      assert.ok(runner.handle({ verb: 'attach', args: { switch: 'vale0', port: `af_packet:${P}a` } }).ok);
      for (let k = 0; k < 5; k++) runner.step();
      const d = runner.handle({ verb: 'detach', args: { switch: 'vale0', port: `af_packet:${P}a` } }) as { result: { stats: { txPackets: number } } };
      stray += d.result.stats.txPackets;
    }
    assert.equal(stray, 0, `frames of ${P}x/${P}y reached the switch through ${P}a's socket (before it was bound to ${P}a)`);
  } finally {
    flood?.kill('SIGKILL');
    runner.close();
    sh(`ip link del ${P}a 2>/dev/null; ip link del ${P}x 2>/dev/null`, false);
  }
});

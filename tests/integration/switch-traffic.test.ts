// The switch under sustained traffic from wasm generators: ports come and go between rounds,
// and every frame ever taken from a tx ring is still accounted for.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Datapath } from '../../src/datapath.js';
import { Switch, conservation, PortStats, SwitchPort } from '../../src/switch.js';
import { Generator, TrafficPlan } from '../../src/gen.js';

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

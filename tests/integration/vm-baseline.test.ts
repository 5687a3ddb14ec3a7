// The baseline for issue #8: two real QEMU guests (Debian's kernel, virtio-net) on a plain
// Linux bridge through TAP devices, all inside a fresh network namespace named with a per-run
// prefix — ping both ways, iperf3 TCP for 10 s and a 64-byte UDP flood guest to guest. The
// numbers are what a wasmap switch between the same guests is measured against. Guests, TAPs,
// bridge and namespace go away afterwards, also when a test fails. Without /dev/kvm the guests
// run under TCG (both boot in 12–18 s; the whole file takes ~40 s on 2 cores, plus ~10 s
// the first time for the image).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { ensureImage, startGuest, qemuAvailable, vhostNetAvailable, kvmAvailable, QEMU, type Guest } from './vm-harness.js';

const required = process.env.WASMAP_REQUIRE_NET === '1';
const why = process.getuid?.() !== 0 ? 'needs root (network namespaces, TAP)' : !existsSync('/dev/net/tun') ? 'no /dev/net/tun'
  : spawnSync('sh', ['-c', 'command -v ip']).status !== 0 ? 'missing tool: ip (apt-get install iproute2)'
  : !qemuAvailable() ? `${QEMU} not installed (apt-get install --no-install-recommends qemu-system-x86)` : '';
const skip = why && !required ? why : false;
if (why && required) test('VM test prerequisites', () => assert.fail(`WASMAP_REQUIRE_NET=1 but ${why}`));

const P = `wv${(process.pid % 9000) + 1000}`;          // per-run prefix, short: names stay < 16 chars
const ns = `${P}`, br = `${P}br`, taps = [`${P}t0`, `${P}t1`];
const ips = ['10.77.0.11', '10.77.0.12'], macs = ['52:54:00:77:00:11', '52:54:00:77:00:12'];
const guests: Guest[] = [];
const vhost = vhostNetAvailable() ? 'on' : 'off';

function sh(cmd: string, ok = true): string {
  const r = spawnSync('sh', ['-c', cmd], { encoding: 'utf8', timeout: 60000 });
  if (ok && r.status !== 0) throw new Error(`'${cmd}' failed (${r.status}): ${r.stderr || r.stdout}`);
  return r.stdout;
}
const secs = (t0: number) => ((Date.now() - t0) / 1000).toFixed(1);
const note = (s: string) => console.log(`# vm-baseline: ${s}`);

async function cleanup(): Promise<void> {
  await Promise.all(guests.map((g) => g.stop(5000).catch(() => g.kill())));
  for (const g of guests) g.kill();
  guests.length = 0;
  sh(`ip netns del ${ns} 2>/dev/null`, false);            // takes the TAPs and the bridge with it
  for (const l of sh(`ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 | grep '^${P}' || true`, false).split('\n').filter(Boolean)) sh(`ip link del ${l} 2>/dev/null`, false);
}

/** A guest's command whose output is iperf3 JSON: parsed, with the console tail if it is not JSON. */
async function iperf(g: Guest, args: string, timeoutMs: number): Promise<Record<string, any>> {
  const { rc, out } = await g.run(`iperf3 ${args} -J`, timeoutMs);
  let j: Record<string, any>;
  try { j = JSON.parse(out.slice(out.indexOf('{'))); } catch { throw new Error(`guest ${g.name}: iperf3 ${args} (rc ${rc}) printed no JSON:\n${out}\n--- console tail ---\n${g.tail()}`); }
  assert.equal(j.error, undefined, `iperf3 ${args}: ${j.error}`);
  assert.equal(rc, 0, `iperf3 ${args} exited ${rc}`);
  return j;
}

before(async () => {
  if (skip) return;
  await cleanup();
  let t = Date.now();
  const img = await ensureImage({ log: note });
  note(`image ${img.built ? 'built' : 'cached'} in ${secs(t)} s (${(img.info as { kernelPackage: string }).kernelPackage})`);
  sh(`ip netns add ${ns}`);
  sh(`ip -n ${ns} link set lo up`);
  sh(`ip -n ${ns} link add ${br} type bridge`);
  sh(`ip -n ${ns} link set ${br} up`);
  for (const tap of taps) {
    sh(`ip -n ${ns} tuntap add dev ${tap} mode tap`);
    sh(`ip -n ${ns} link set ${tap} master ${br}`);
    sh(`ip -n ${ns} link set ${tap} up`);
  }
  t = Date.now();
  const started = await Promise.allSettled(taps.map((tap, i) => startGuest({
    name: `${P}g${i}`, ip: `${ips[i]}/24`, mac: macs[i], netns: ns, image: img,
    netdevArgs: ['-netdev', `tap,id=n0,ifname=${tap},script=no,downscript=no,vhost=${vhost}`],
  })));
  for (const s of started) if (s.status === 'fulfilled') guests.push(s.value);
  for (const s of started) if (s.status === 'rejected') throw s.reason;
  note(`two guests booted in ${secs(t)} s (${kvmAvailable() ? 'KVM' : 'TCG'}; ${guests.map((g) => `${g.name} ${(g.bootMs / 1000).toFixed(1)} s`).join(', ')}), tap vhost=${vhost}`);
}, { timeout: 600_000 });
after(async () => { if (!skip) await cleanup(); });

test('two guests on a Linux bridge: links up, ping both ways', { skip, timeout: 120_000 }, async () => {
  const t = Date.now();
  for (const g of guests) {
    assert.equal((await g.check('cat /sys/class/net/eth0/operstate')).trim(), 'up', `${g.name}: eth0 up`);
    assert.match(await g.check('ip addr show eth0'), new RegExp(`inet ${g.ip.replace(/\./g, '\\.')}/24`));
    assert.match(await g.check('cat /sys/class/net/eth0/address'), new RegExp(g.mac));
  }
  for (const tap of taps) {
    const l = (JSON.parse(sh(`ip -n ${ns} -j link show ${tap}`)) as { operstate: string; master: string }[])[0];
    assert.equal(l.master, br, `${tap} on the bridge`);
    assert.equal(l.operstate, 'UP', `${tap} carrier up (QEMU has it open)`);
  }
  const [a, b] = guests;
  const ab = await a.run(`ping -c 3 -W 2 ${b.ip}`, 30_000);
  assert.equal(ab.rc, 0, `${a.name} -> ${b.name}:\n${ab.out}\n${a.tail()}`);
  assert.match(ab.out, /3 packets received/);
  const ba = await b.run(`ping -c 3 -W 2 ${a.ip}`, 30_000);
  assert.equal(ba.rc, 0, `${b.name} -> ${a.name}:\n${ba.out}\n${b.tail()}`);
  assert.match(ba.out, /3 packets received/);
  const rtt = /= [\d.]+\/([\d.]+)\//.exec(ba.out)?.[1];
  note(`ping both ways ok, rtt avg ${rtt} ms, ${secs(t)} s`);
});

test('iperf3 TCP guest to guest, 10 s', { skip, timeout: 120_000 }, async () => {
  const t = Date.now();
  const [a, b] = guests;
  const j = await iperf(a, `-c ${b.ip} -t 10`, 90_000);
  const rx = j.end.sum_received as { bytes: number; bits_per_second: number };
  const retr = (j.end.sum_sent as { retransmits?: number }).retransmits;
  note(`TCP ${a.name} -> ${b.name} over the Linux bridge: ${(rx.bits_per_second / 1e9).toFixed(3)} Gbit/s (${(rx.bytes / 1048576).toFixed(0)} MiB, ${retr} retransmits), ${secs(t)} s`);
  assert.ok(rx.bytes > 0, 'bytes received');
  assert.ok(rx.bits_per_second > 0);
});

test('iperf3 UDP 64-byte datagrams guest to guest, 5 s', { skip, timeout: 120_000 }, async () => {
  const t = Date.now();
  const [a, b] = guests;
  const j = await iperf(a, `-c ${b.ip} -u -l 64 -b 0 -t 5`, 90_000);
  const sent = j.end.sum_sent as { packets: number; seconds: number };
  const rcv = j.end.sum_received as { packets: number; lost_packets: number; lost_percent: number; seconds: number };
  const got = rcv.packets - rcv.lost_packets;
  const pps = (n: number, s: number) => `${(n / s / 1000).toFixed(1)} kpps`;
  note(`UDP 64 B ${a.name} -> ${b.name}: sent ${pps(sent.packets, sent.seconds)}, received ${pps(got, rcv.seconds)}, loss ${rcv.lost_percent.toFixed(1)} % (${rcv.lost_packets}/${rcv.packets}), ${secs(t)} s`);
  assert.ok(sent.packets > 0, 'datagrams sent');
  assert.ok(got > 0, 'datagrams received');
});

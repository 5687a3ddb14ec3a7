// Tunnel port attach (#18): the address forms, the checks with clear errors, one socket shared
// by the VNIs of one LOCAL_IP:PORT and released with the last of them. Loopback only.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { Runner } from '../../src/runner.js';
import { loadHost } from '../../src/host.js';
import { parseLocal, ipBytes, ipText } from '../../src/backends/tunnel.js';
import { parsePortName } from '../../src/portname.js';

const skip = loadHost() ? false : 'native host not built';
let runner: Runner | null = null;
after(() => runner?.close());

test('tunnel addresses: IPv4, IPv4:PORT, [IPv6]:PORT, bare IPv6; default ports 4789 / 6081', () => {
  assert.deepEqual(parseLocal('vxlan', '10.0.0.1'), { ip: '10.0.0.1', port: 4789, v6: false });
  assert.deepEqual(parseLocal('geneve', '10.0.0.1'), { ip: '10.0.0.1', port: 6081, v6: false });
  assert.deepEqual(parseLocal('vxlan', '10.0.0.1:8472'), { ip: '10.0.0.1', port: 8472, v6: false });
  assert.deepEqual(parseLocal('vxlan', '[fd00::1]:4790'), { ip: 'fd00::1', port: 4790, v6: true });
  assert.deepEqual(parseLocal('geneve', 'fd00::1'), { ip: 'fd00::1', port: 6081, v6: true });
  assert.throws(() => parseLocal('vxlan', '10.0.0.1:0'), /1\.\.65535/);
  assert.throws(() => parseLocal('vxlan', '10.0.0.256'), /not an IPv4 or IPv6/);
  assert.throws(() => parseLocal('vxlan', '[fd00::1'), /no '\]'/);
  assert.deepEqual(parsePortName('vxlan:10.0.0.1:4789'), { kind: 'vxlan', name: '10.0.0.1:4789' });
  assert.throws(() => parsePortName('geneve:'), /local underlay address/);
});

test('addresses as the datapath keeps them (16 bytes) and back', () => {
  assert.deepEqual([...ipBytes('10.99.0.3')], [10, 99, 0, 3, ...new Array(12).fill(0)]);
  assert.deepEqual([...ipBytes('fd99::4')], [0xfd, 0x99, ...new Array(13).fill(0), 4]);
  assert.deepEqual([...ipBytes('1:2:3:4:5:6:7:8')], [0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 0, 7, 0, 8]);
  assert.deepEqual([...ipBytes('::ffff:10.1.2.3')].slice(10), [0xff, 0xff, 10, 1, 2, 3]);
  assert.equal(ipText(ipBytes('fd99::4'), true), 'fd99::4');
  assert.equal(ipText(ipBytes('10.99.0.3'), false), '10.99.0.3');
});

test('attach: checks with clear errors; VNIs of one address share one socket, released with the last', { skip }, () => {
  runner = new Runner(['vale0', 'vale1']);
  const port = 30000 + (process.pid % 20000);
  const sockets = () => runner!.memory().sockets;
  const s0 = sockets();
  assert.throws(() => runner!.attach('vale0', `vxlan:127.0.0.1:${port}`, {}), /need --vni/);
  assert.throws(() => runner!.attach('vale0', `vxlan:127.0.0.1:${port}`, { vni: 1 << 24 }), /--vni must be/);
  assert.throws(() => runner!.attach('vale0', `vxlan:127.0.0.1:${port}`, { vni: 1, remote: ['::1'] }), /not an IPv4 address/);
  assert.throws(() => runner!.attach('vale0', `vxlan:127.0.0.1:${port}`, { vni: 1, mtu: 100 }), /--mtu must be/);
  assert.equal(sockets(), s0, 'a refused attach leaves no socket behind');
  const a = runner.attach('vale0', `vxlan:127.0.0.1:${port}`, { vni: 1, remote: ['127.0.0.2'] }) as { name: string; srcPorts: number[] };
  assert.equal(a.name, 'vale0:vxlan1');
  assert.equal(a.srcPorts.length, 4);
  assert.equal(sockets(), s0 + 5, 'one receiving socket and four send sockets');
  runner.attach('vale1', `vxlan:127.0.0.1:${port}`, { vni: 2 });
  assert.equal(sockets(), s0 + 5, 'the second VNI shares them');
  assert.throws(() => runner!.attach('vale1', `vxlan:127.0.0.1:${port}`, { vni: 2, name: 'other' }), /VNI 2 already has a port/);
  assert.throws(() => runner!.attach('vale1', `geneve:127.0.0.1:${port}`, { vni: 3 }), /already carries vxlan/);
  runner.detach('vale0', 'vxlan1');
  assert.equal(sockets(), s0 + 5, 'still in use by VNI 2');
  runner.detach('vale1', 'vxlan2');
  assert.equal(sockets(), s0, 'gone with the last VNI');
  const before = runner.dp.allocated;
  runner.attach('vale0', `geneve:127.0.0.1:${port}`, { vni: 7, srcPorts: 1 });
  runner.detach('vale0', 'geneve7');
  assert.equal(runner.dp.allocated, before, 'the memory it took is given back');
});

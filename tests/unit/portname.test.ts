// netmap's own name-parser table (utils/ctrl-api-test.c, nmreq_parse_tests) replayed, plus
// wasmap's backend forms and netmap's length limits.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parsePortName, formatPortName, NR_REG, NR_FLAG, NetmapPortSpec } from '../../src/portname.js';
import { WasmapError } from '../../src/errors.js';

const { ALL_NIC, ONE_NIC, NIC_SW, SW } = NR_REG;
const { EXCLUSIVE, ZCOPY_MON, MONITOR_RX, MONITOR_TX, RX_RINGS_ONLY, TX_RINGS_ONLY } = NR_FLAG;
type Row = [string, string, string, number, number, number];  // input, name, options, mode, ring, flags
const ok: Row[] = [
  ['netmap:eth0', 'eth0', '', ALL_NIC, 0, 0],
  ['netmap:eth0-1', 'eth0', '', ONE_NIC, 1, 0],
  ['netmap:eth0/x', 'eth0', '', ALL_NIC, 0, EXCLUSIVE],
  ['netmap:eth0/z', 'eth0', '', ALL_NIC, 0, ZCOPY_MON],
  ['netmap:eth0/r', 'eth0', '', ALL_NIC, 0, MONITOR_RX],
  ['netmap:eth0/t', 'eth0', '', ALL_NIC, 0, MONITOR_TX],
  ['netmap:eth0-2/Tx', 'eth0', '', ONE_NIC, 2, TX_RINGS_ONLY | EXCLUSIVE],
  ['netmap:eth0*', 'eth0', '', NIC_SW, 0, 0],
  ['netmap:eth0^', 'eth0', '', SW, 0, 0],
  ['netmap:eth0@2', 'eth0', '', ALL_NIC, 0, 0],
  ['netmap:eth0@2/R', 'eth0', '', ALL_NIC, 0, RX_RINGS_ONLY],
  ['netmap:eth0@netmap:lo/R', 'eth0', '@netmap:lo/R', ALL_NIC, 0, 0],
  ['netmap:eth0/R@xxx', 'eth0', '@xxx', ALL_NIC, 0, RX_RINGS_ONLY],
  ['netmap:eth0@2/R@2', 'eth0', '', ALL_NIC, 0, RX_RINGS_ONLY],
  ['vale0:0', 'vale0:0', '', ALL_NIC, 0, 0],
  ['vale:0', 'vale:0', '', ALL_NIC, 0, 0],
  ['valeXXX:YYY', 'valeXXX:YYY', '', ALL_NIC, 0, 0],
  ['valeXXX:YYY-4', 'valeXXX:YYY', '', ONE_NIC, 4, 0],
  ['netmap:14', '14', '', ALL_NIC, 0, 0],
  ['netmap:pipe{0', 'pipe{0', '', ALL_NIC, 0, 0],
  ['netmap:pipe{in', 'pipe{in', '', ALL_NIC, 0, 0],
  ['netmap:pipe{in-7', 'pipe{in', '', ONE_NIC, 7, 0],
  ['vale0:0{0', 'vale0:0{0', '', ALL_NIC, 0, 0],
  ['vale0:0@opt', 'vale0:0', '@opt', ALL_NIC, 0, 0],
  ['vale0:0/Tx@opt', 'vale0:0', '@opt', ALL_NIC, 0, TX_RINGS_ONLY | EXCLUSIVE],
  ['vale0:0-3@opt', 'vale0:0', '@opt', ONE_NIC, 3, 0],
];
const fail = ['netmap:eth0-', 'netmap:eth0@2/R@3', 'netmap:eth0@', 'netmap:', 'netmap:^', 'netmap:{', 'netmap:vale0:0',
  'eth0', 'netmapXXX:eth0', 'netmap:eth0&', 'netmap:pipe{1}2', '', 'vale0:0@'];

for (const [input, name, options, mode, ringId, flags] of ok) {
  test(`netmap table: ${input}`, () => {
    const s = parsePortName(input) as NetmapPortSpec;
    assert.deepEqual([s.name, s.options, s.mode, s.ringId, s.flags], [name, options, mode, ringId, flags]);
  });
}
for (const input of fail) {
  test(`netmap table: '${input}' is refused`, () => {
    assert.throws(() => parsePortName(input), (e: unknown) => e instanceof WasmapError && e.code === 'EINVAL' && e.message.includes(`'${input}'`));
  });
}

test('memory id and pipe ends are reported', () => {
  assert.equal((parsePortName('netmap:eth0@2') as NetmapPortSpec).memId, 2);
  assert.deepEqual((parsePortName('netmap:pipe}in') as NetmapPortSpec).pipe, { parent: 'pipe', end: 'slave', id: 'in' });
  assert.deepEqual((parsePortName('vale0:p1{3') as NetmapPortSpec).pipe, { parent: 'vale0:p1', end: 'master', id: '3' });
  const v = parsePortName('vale1:vm_1') as NetmapPortSpec;
  assert.equal(v.switchName, 'vale1');
  assert.equal(v.port, 'vm_1');
});

test('formatPortName round-trips', () => {
  for (const input of ['netmap:eth0-2/xT', 'vale0:p1', 'netmap:eth0^', 'netmap:eth0*@3', 'vale0:0/R@opt']) {
    const s = parsePortName(input) as NetmapPortSpec;
    assert.deepEqual(parsePortName(formatPortName(s)), s);
  }
});

test('wasmap backend names', () => {
  assert.deepEqual(parsePortName('tap:wm0'), { kind: 'tap', name: 'wm0' });
  assert.deepEqual(parsePortName('af_packet:veth-a'), { kind: 'af_packet', name: 'veth-a' });
  assert.deepEqual(parsePortName('vhost-user:/run/vm1.sock'), { kind: 'vhost-user', name: '/run/vm1.sock' });
  for (const b of ['tap:', 'tap:a/b', 'tap:0123456789abcdef', 'af_packet:..', 'vhost-user:']) {
    assert.throws(() => parsePortName(b), { code: 'EINVAL' });
  }
});

test('VALE length limits (nm_bdg_name_validate)', () => {
  assert.ok(parsePortName('vale01234567890:p'));   // 15-character switch name
  assert.throws(() => parsePortName('vale012345678901:p'), { code: 'EINVAL' });
  assert.ok(parsePortName('vale0:abcdefghijklmno'));   // 15-character port
  assert.throws(() => parsePortName('vale0:abcdefghijklmnop'), { code: 'EINVAL' });
  assert.throws(() => parsePortName('netmap:eth0-4095'), { code: 'EINVAL' });
  assert.ok(parsePortName('netmap:eth0-4094'));
});

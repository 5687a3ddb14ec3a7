// netmap's own name-parser table (utils/ctrl-api-test.c: nmreq_parse_tests, 39 rows) replayed
// row for row, then what the table does not cover: the grammar's ordering rules, the kernel's
// name limits, wasmap's backend forms, formatPortName, and the shape of every error.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parsePortName, formatPortName, NR_REG, NR_FLAG, PORTNAME_LIMITS } from '../../src/portname.js';
import type { NetmapPortSpec, PortSpec } from '../../src/portname.js';
import { WasmapError } from '../../src/errors.js';

const { ALL_NIC, ONE_NIC, NIC_SW, SW, ONE_SW } = NR_REG;
const { EXCLUSIVE, ZCOPY_MON, MONITOR_RX, MONITOR_TX, RX_RINGS_ONLY, TX_RINGS_ONLY } = NR_FLAG;

function netmapSpec(input: string): NetmapPortSpec {
  const s = parsePortName(input);
  assert.ok(s.kind === 'netmap' || s.kind === 'vale', `${input} parsed as ${s.kind}`);
  return s as NetmapPortSpec;
}

// Every refusal must be EINVAL, quote the input as typed, and say what would have been valid.
function assertInvalid(input: string, why?: RegExp): void {
  assert.throws(() => parsePortName(input), (e: unknown) => {
    assert.ok(e instanceof WasmapError, `not a WasmapError: ${String(e)}`);
    assert.equal(e.code, 'EINVAL');
    assert.ok(e.message.includes(`'${input}'`), `message does not quote the input: ${e.message}`);
    assert.match(e.message, /Valid forms: /);
    if (why) assert.match(e.message, why);
    return true;
  });
}

// ---- 7.1: nmreq_parse_tests, in upstream order -------------------------------------------
// ok rows: nr_name, the suffix left after parsing (our `options`), mode, ringid, flags, and for
// some rows the fields netmap keeps elsewhere (mem id) or that we derive (switch, port, pipe).
// E1 = nmreq_header_decode refuses it, E2 = the header parses but nmreq_register_decode refuses.
type Ok = { input: string; name: string; suffix: string; mode: number; ringId: number; flags: number; more?: Partial<NetmapPortSpec> };
type Err = { input: string; error: 'E1' | 'E2' };
const ok = (input: string, name: string, suffix: string, mode: number, ringId: number, flags: number, more?: Partial<NetmapPortSpec>): Ok =>
  ({ input, name, suffix, mode, ringId, flags, more });
const e1 = (input: string): Err => ({ input, error: 'E1' });
const e2 = (input: string): Err => ({ input, error: 'E2' });

const TABLE: Array<Ok | Err> = [
  ok('netmap:eth0', 'eth0', '', ALL_NIC, 0, 0, { kind: 'netmap', memId: 0 }),
  ok('netmap:eth0-1', 'eth0', '', ONE_NIC, 1, 0),
  e2('netmap:eth0-'),
  ok('netmap:eth0/x', 'eth0', '', ALL_NIC, 0, EXCLUSIVE),
  ok('netmap:eth0/z', 'eth0', '', ALL_NIC, 0, ZCOPY_MON),
  ok('netmap:eth0/r', 'eth0', '', ALL_NIC, 0, MONITOR_RX),
  ok('netmap:eth0/t', 'eth0', '', ALL_NIC, 0, MONITOR_TX),
  ok('netmap:eth0-2/Tx', 'eth0', '', ONE_NIC, 2, TX_RINGS_ONLY | EXCLUSIVE),
  ok('netmap:eth0*', 'eth0', '', NIC_SW, 0, 0),
  ok('netmap:eth0^', 'eth0', '', SW, 0, 0),
  ok('netmap:eth0@2', 'eth0', '', ALL_NIC, 0, 0, { memId: 2 }),
  ok('netmap:eth0@2/R', 'eth0', '', ALL_NIC, 0, RX_RINGS_ONLY, { memId: 2 }),
  ok('netmap:eth0@netmap:lo/R', 'eth0', '@netmap:lo/R', ALL_NIC, 0, 0, { memId: 0 }),
  ok('netmap:eth0/R@xxx', 'eth0', '@xxx', ALL_NIC, 0, RX_RINGS_ONLY),
  ok('netmap:eth0@2/R@2', 'eth0', '', ALL_NIC, 0, RX_RINGS_ONLY, { memId: 2 }),
  e2('netmap:eth0@2/R@3'),
  e2('netmap:eth0@'),
  e1('netmap:'),
  e1('netmap:^'),
  e1('netmap:{'),
  e1('netmap:vale0:0'),
  e1('eth0'),
  ok('vale0:0', 'vale0:0', '', ALL_NIC, 0, 0, { kind: 'vale', switchName: 'vale0', port: '0' }),
  ok('vale:0', 'vale:0', '', ALL_NIC, 0, 0, { kind: 'vale', switchName: 'vale', port: '0' }),
  ok('valeXXX:YYY', 'valeXXX:YYY', '', ALL_NIC, 0, 0, { switchName: 'valeXXX', port: 'YYY' }),
  ok('valeXXX:YYY-4', 'valeXXX:YYY', '', ONE_NIC, 4, 0, { switchName: 'valeXXX', port: 'YYY' }),
  e1('netmapXXX:eth0'),
  ok('netmap:14', '14', '', ALL_NIC, 0, 0),
  e1('netmap:eth0&'),
  ok('netmap:pipe{0', 'pipe{0', '', ALL_NIC, 0, 0, { pipe: { parent: 'pipe', end: 'master', id: '0' } }),
  ok('netmap:pipe{in', 'pipe{in', '', ALL_NIC, 0, 0, { pipe: { parent: 'pipe', end: 'master', id: 'in' } }),
  ok('netmap:pipe{in-7', 'pipe{in', '', ONE_NIC, 7, 0, { pipe: { parent: 'pipe', end: 'master', id: 'in' } }),
  ok('vale0:0{0', 'vale0:0{0', '', ALL_NIC, 0, 0, { switchName: 'vale0', port: '0', pipe: { parent: 'vale0:0', end: 'master', id: '0' } }),
  e1('netmap:pipe{1}2'),
  ok('vale0:0@opt', 'vale0:0', '@opt', ALL_NIC, 0, 0, { memId: 0 }),
  ok('vale0:0/Tx@opt', 'vale0:0', '@opt', ALL_NIC, 0, TX_RINGS_ONLY | EXCLUSIVE),
  ok('vale0:0-3@opt', 'vale0:0', '@opt', ONE_NIC, 3, 0),
  e2('vale0:0@'),
  e1(''),
];

test('the 7.1 table has netmap\'s 39 rows', () => {
  assert.equal(TABLE.length, 39);
  assert.equal(new Set(TABLE.map((r) => r.input)).size, 39);
});

for (const row of TABLE) {
  if ('error' in row) {
    test(`7.1 ${JSON.stringify(row.input)} is refused (${row.error})`, () => assertInvalid(row.input));
  } else {
    test(`7.1 ${row.input}`, () => {
      const s = netmapSpec(row.input);
      assert.deepEqual(
        { name: s.name, suffix: s.options, mode: s.mode, ringId: s.ringId, flags: s.flags },
        { name: row.name, suffix: row.suffix, mode: row.mode, ringId: row.ringId, flags: row.flags },
      );
      for (const [k, v] of Object.entries(row.more ?? {})) assert.deepEqual(s[k as keyof NetmapPortSpec], v, k);
      if (s.kind === 'netmap') assert.equal(s.switchName, undefined);
      if (!s.name.includes('{') && !s.name.includes('}')) assert.equal(s.pipe, undefined);
    });
  }
}

// Every accepted 7.1 row survives formatPortName; the rows already in canonical spelling come back as typed.
const NOT_CANONICAL: ReadonlyMap<string, string> = new Map([['netmap:eth0@2/R@2', 'netmap:eth0@2/R']]);
for (const row of TABLE) {
  if ('error' in row) continue;
  test(`7.1 round trip: ${row.input}`, () => {
    const s = netmapSpec(row.input);
    const text = formatPortName(s);
    assert.equal(text, NOT_CANONICAL.get(row.input) ?? row.input);
    assert.deepEqual(parsePortName(text), s);
  });
}

// ---- grammar beyond the table (libnetmap's state machine) --------------------------------
test('^N selects one host ring, and ring limits are 0 <= k < 4095', () => {
  assert.deepEqual([netmapSpec('netmap:eth0^3').mode, netmapSpec('netmap:eth0^3').ringId], [ONE_SW, 3]);
  assert.equal(netmapSpec('netmap:eth0^0').mode, ONE_SW);
  assert.equal(netmapSpec('netmap:eth0-0').ringId, 0);
  assert.equal(netmapSpec('netmap:eth0-4094').ringId, 4094);
  assert.equal(netmapSpec('netmap:eth0^4094').ringId, 4094);
  assert.equal(PORTNAME_LIMITS.RING_MASK, 4095);
});
for (const input of ['netmap:eth0-4095', 'netmap:eth0^4095', 'netmap:eth0-99999999999999999999']) {
  test(`ring out of range: ${input}`, () => assertInvalid(input, /out of range \(0 to 4094\)/));
}

test('selectors, memory ids and flags combine in netmap\'s order', () => {
  const cases: Array<[string, Partial<NetmapPortSpec>]> = [
    ['netmap:eth0^/x', { mode: SW, flags: EXCLUSIVE }],
    ['netmap:eth0^2@5/R', { mode: ONE_SW, ringId: 2, memId: 5, flags: RX_RINGS_ONLY }],
    ['netmap:eth0*@3', { mode: NIC_SW, memId: 3 }],
    ['netmap:eth0/@2', { flags: 0, memId: 2 }],   // an empty flag run may end at '@'
    ['netmap:eth0/xR@2/t', { flags: EXCLUSIVE | RX_RINGS_ONLY | MONITOR_TX, memId: 2 }],
    ['netmap:eth0/zrt', { flags: ZCOPY_MON | MONITOR_RX | MONITOR_TX }],
    ['netmap:eth0@65535', { memId: 65535 }],
    ['netmap:eth0@007', { memId: 7 }],
    ['netmap:eth0@2@2', { memId: 2 }],
    ['netmap:eth0@conf:rings=4,slots=1024@share=vale0:a', { options: '@conf:rings=4,slots=1024@share=vale0:a' }],
    ['netmap:eth0-1@/x', { mode: ONE_NIC, ringId: 1, options: '@/x' }],   // left for the option parser, as in libnetmap
  ];
  for (const [input, want] of cases) {
    const s = netmapSpec(input);
    for (const [k, v] of Object.entries(want)) assert.deepEqual(s[k as keyof NetmapPortSpec], v, `${input}: ${k}`);
  }
});

const GRAMMAR_ERRORS: Array<[string, RegExp]> = [
  ['netmap:eth0-x', /expected a ring number/],
  ['netmap:eth0--1', /expected a ring number/],
  ['netmap:eth0-1-2', /one ring selector/],
  ['netmap:eth0*3', /one ring selector/],
  ['netmap:eth0^*', /one ring selector/],
  ['netmap:eth0@2-1', /one ring selector/],
  ['netmap:eth0/x*', /unknown flag '\*'/],
  ['netmap:eth0/x/R', /unknown flag '\/'/],
  ['netmap:eth0/q', /unknown flag 'q'/],
  ['netmap:eth0/', /'\/' needs at least one flag/],
  ['netmap:eth0/R@', /'@' needs a memory id or an option/],
  ['netmap:eth0@0', /memory id 0/],
  ['netmap:eth0@65536', /larger than 65535/],
  ['netmap:eth0@2@3', /given twice/],
];
for (const [input, why] of GRAMMAR_ERRORS) test(`grammar: ${input} is refused`, () => assertInvalid(input, why));

// ---- names -------------------------------------------------------------------------------
test('pipe ends and VALE fields', () => {
  assert.deepEqual(netmapSpec('netmap:pipe}in').pipe, { parent: 'pipe', end: 'slave', id: 'in' });
  assert.deepEqual(netmapSpec('vale0:p1}3').pipe, { parent: 'vale0:p1', end: 'slave', id: '3' });
  const v = netmapSpec('vale1:vm_1');
  assert.deepEqual([v.kind, v.switchName, v.port, v.pipe], ['vale', 'vale1', 'vm_1', undefined]);
  const p = netmapSpec('vale_A:x{y-1');
  assert.deepEqual([p.name, p.switchName, p.port, p.mode, p.ringId], ['vale_A:x{y', 'vale_A', 'x', ONE_NIC, 1]);
});

const NAME_ERRORS: Array<[string, RegExp]> = [
  ['netmap', /between 'netmap' and ':'/],
  ['vale0', /needs ':'/],
  ['vale-1:0', /switch name 'vale-1'/],
  ['vale0:', /VALE port name is empty/],
  ['vale0:a:b', /VALE port name 'a:b'/],
  ['netmap:{0', /interface name is empty/],   // the kernel refuses a pipe without a parent
  ['vale0:{0', /VALE port name is empty/],
  ['netmap:a{b{c', /pipe id 'b{c'/],
  ['netmap:a{', /pipe needs an id after '\{'/],
  ['netmap:a}', /pipe needs an id after '\}'/],
  ['netmap:em0.123', /interface name 'em0\.123'/],
  ['netmap:vale0:0', /named without 'netmap:'/],
  ['netmap:pipe{0^', /no host rings/],
  ['netmap:pipe{0*', /no host rings/],
  ['netmap:pipe}0^1', /no host rings/],
  ['tap0', /must begin with/],
  ['NETMAP:eth0', /must begin with/],
];
for (const [input, why] of NAME_ERRORS) test(`names: ${JSON.stringify(input)} is refused`, () => assertInvalid(input, why));

// ---- nm_bdg_name_validate and nr_name's 64 bytes -----------------------------------------
test('VALE limits: switch (with "vale") <= 15, port <= 15, whole name < 64', () => {
  const sw15 = 'vale' + 'S'.repeat(11), port15 = 'P'.repeat(15);
  assert.equal(netmapSpec(`${sw15}:p`).switchName, sw15);
  assert.equal(netmapSpec(`vale0:${port15}`).port, port15);
  // The pipe suffix is stripped before the kernel checks the port, so only nr_name's size bounds it.
  const id31 = 'i'.repeat(31);
  const longest = `${sw15}:${port15}{${id31}`;
  assert.equal(longest.length, PORTNAME_LIMITS.NAME_SIZE - 1);
  assert.equal(netmapSpec(longest).name, longest);
  assert.equal(netmapSpec(`netmap:${'n'.repeat(63)}`).name.length, 63);
});
const LIMIT_ERRORS: Array<[string, RegExp]> = [
  [`vale${'S'.repeat(12)}:p`, /switch name '.*' is longer than 15/],
  [`vale0:${'P'.repeat(16)}`, /VALE port name '.*' is longer than 15/],
  [`vale${'S'.repeat(11)}:${'P'.repeat(15)}{${'i'.repeat(32)}`, /64 characters, netmap allows 63/],
  [`netmap:${'n'.repeat(64)}`, /64 characters, netmap allows 63/],
  [`netmap:pipe{${'i'.repeat(60)}-1`, /netmap allows 63/],
];
for (const [input, why] of LIMIT_ERRORS) test(`limits: ${input.length}-char ${input.slice(0, 12)}... is refused`, () => assertInvalid(input, why));

// ---- wasmap backends ---------------------------------------------------------------------
test('backend forms', () => {
  const cases: Array<[string, PortSpec]> = [
    ['tap:wm0', { kind: 'tap', name: 'wm0' }],
    ['tap:abcdefghijklmno', { kind: 'tap', name: 'abcdefghijklmno' }],   // 15 bytes, IFNAMSIZ - 1
    ['af_packet:veth-a', { kind: 'af_packet', name: 'veth-a' }],
    ['af_packet:em0.123', { kind: 'af_packet', name: 'em0.123' }],   // Linux allows what netmap: does not
    ['af_packet:.x', { kind: 'af_packet', name: '.x' }],
    ['vhost-user:/run/vm1.sock', { kind: 'vhost-user', name: '/run/vm1.sock' }],
    ['vhost-user:rel/a:b.sock', { kind: 'vhost-user', name: 'rel/a:b.sock' }],
  ];
  for (const [input, want] of cases) assert.deepEqual(parsePortName(input), want, input);
});
const BACKEND_ERRORS: Array<[string, RegExp]> = [
  ['tap:', /needs an interface name/],
  ['af_packet:', /needs an interface name/],
  ['tap:abcdefghijklmnop', /longer than 15 bytes/],
  ['tap:abcdefghijklmné', /longer than 15 bytes/],   // 15 characters, 16 bytes
  ['tap:a/b', /cannot contain "\/"/],
  ['tap:a:b', /cannot contain ":"/],
  ['tap:a b', /cannot contain " "/],
  ['af_packet:a\tb', /cannot contain "\\t"/],
  ['af_packet:.', /not a usable interface name/],
  ['af_packet:..', /not a usable interface name/],
  ['vhost-user:', /needs a socket path/],
  ['vhost-user:/tmp/a\0b', /NUL/],
];
for (const [input, why] of BACKEND_ERRORS) {
  test(`backends: ${JSON.stringify(input)} is refused`, () => {
    assertInvalid(input, why);
    assert.throws(() => parsePortName(input), (e: unknown) => e instanceof WasmapError && e.message.includes(`${input.split(':')[0]}:`));
  });
}

// ---- formatPortName and purity -----------------------------------------------------------
test('formatPortName round-trips the other forms', () => {
  for (const input of ['netmap:eth0^3/t', 'netmap:eth0*@3/zx@conf:rings=2', 'vale:p', 'netmap:pipe}in-0', 'vale0:p1{a/R']) {
    const s = netmapSpec(input);
    assert.equal(formatPortName(s), input);
    assert.deepEqual(parsePortName(formatPortName(s)), s);
  }
});

test('formatPortName refuses specs that have no spelling', () => {
  const base = netmapSpec('netmap:eth0');
  for (const bad of [
    { ...base, mode: NR_REG.DEFAULT }, { ...base, mode: NR_REG.NULL }, { ...base, mode: NR_REG.PIPE_MASTER },
    { ...base, flags: 0x8000 }, { ...base, options: 'conf:rings=2' }, { ...base, options: '@2' },
  ]) {
    assert.throws(() => formatPortName(bad), (e: unknown) => e instanceof WasmapError && e.code === 'EINVAL' && e.message.includes('eth0'));
  }
});

test('parsing is pure: failures leave no trace, results are fresh objects', () => {
  const first = netmapSpec('vale0:0{0-1/R@opt');
  const snapshot = structuredClone(first);
  for (const row of TABLE) if ('error' in row) assert.throws(() => parsePortName(row.input));
  assertInvalid('netmap:eth0@2/R@3');
  const again = netmapSpec('vale0:0{0-1/R@opt');
  assert.deepEqual(again, snapshot);
  again.name = 'changed';
  if (again.pipe) again.pipe.id = 'changed';
  assert.deepEqual(netmapSpec('vale0:0{0-1/R@opt'), snapshot);
  assert.deepEqual(first, snapshot);
});

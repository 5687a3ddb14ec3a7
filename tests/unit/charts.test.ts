// Benchmark charts: the SVG drawn from results is well formed, has a bar (or point) per
// result with its value, tells wasmap from its peers, and `bench --from` refuses what is not
// a results array.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { writeCharts, barChart } from '../../src/cli/charts.js';
import { findBuildFile } from '../../src/paths.js';

const balanced = (svg: string) => {
  // every element opened is closed, in order (a tiny well-formedness check without a parser)
  const stack: string[] = [];
  for (const m of svg.matchAll(/<(\/?)([a-z]+)[^>]*?(\/?)>/g)) {
    if (m[3]) continue;
    if (m[1]) assert.equal(stack.pop(), m[2], `</${m[2]}> closes what was opened`); else stack.push(m[2]);
  }
  assert.deepEqual(stack, []);
};

test('charts: netns results give three bar charts, wasmap and peers in their colours, skipped paths left out', () => {
  const dir = mkdtempSync(join(tmpdir(), 'wasmap-charts-'));
  try {
    const rows = [
      { name: 'linux-bridge', runs: 3, gbps: 16.3, mpps: 0.57, rtt_us: 60, note: 'veth + bridge' },
      { name: 'wasmap-tap', runs: 3, gbps: 11.3, mpps: 0.19, rtt_us: 118, note: 'TAP <ports> & more' },
      { name: 'ovs-afxdp', runs: 0, gbps: 0, mpps: 0, rtt_us: 0, note: '', skipped: 'needs ovs-vswitchd' },
    ];
    const files = writeCharts(dir, rows);
    assert.deepEqual(files.map((f) => f.slice(dir.length + 1)), ['netns-tcp.svg', 'netns-64b.svg', 'netns-rtt.svg']);
    const tcp = readFileSync(files[0], 'utf8');
    balanced(tcp);
    assert.equal((tcp.match(/<rect x=/g) ?? []).length, 2, 'a bar per measured path');
    assert.match(tcp, />16\.3</); assert.match(tcp, />11\.3</);
    assert.ok(!tcp.includes('ovs-afxdp'), 'a skipped path is not drawn');
    assert.ok(tcp.includes('&lt;ports&gt; &amp; more'), 'text is escaped');
    assert.match(tcp, /fill="#2f6fd6"><title>TAP/, 'wasmap in its colour');
    assert.match(tcp, /fill="#9aa3ad"><title>veth/, 'the peer in the other');
  } finally { rmSync(dir, { recursive: true, force: true }); }
});

test('charts: in-process results give the batch sweep curve and the scenario bars', () => {
  const dir = mkdtempSync(join(tmpdir(), 'wasmap-charts-'));
  try {
    const rows = [1, 2, 4, 8].map((b) => ({ name: 'switch-batch-sweep', mpps: b * 2, batch: b, runs: 1 }));
    rows.push({ name: 'switch-2port-60', mpps: 40, batch: 1024, runs: 3 }, { name: 'native-2port-60', mpps: 45, batch: 1024, runs: 3 });
    const files = writeCharts(dir, rows);
    assert.deepEqual(files.map((f) => f.slice(dir.length + 1)), ['batch-sweep.svg', 'scenarios.svg']);
    const sweep = readFileSync(files[0], 'utf8');
    balanced(sweep);
    assert.equal((sweep.match(/<circle /g) ?? []).length, 4, 'a point per batch size');
    balanced(readFileSync(files[1], 'utf8'));
    balanced(barChart('t', 'u', [{ name: 'zero', value: 0, ours: true }]));
  } finally { rmSync(dir, { recursive: true, force: true }); }
});

test('bench --from: draws an earlier --json output; refuses a file that is not one, with the reason', () => {
  const cli = findBuildFile('cli.mjs');
  assert.ok(cli);
  const dir = mkdtempSync(join(tmpdir(), 'wasmap-charts-'));
  try {
    writeFileSync(join(dir, 'r.json'), JSON.stringify([{ name: 'switch-2port-60', mpps: 40, batch: 1024 }]));
    let r = spawnSync(process.execPath, [cli!, 'bench', '--from', join(dir, 'r.json'), '--svg', join(dir, 'out')], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.match(readFileSync(join(dir, 'out', 'scenarios.svg'), 'utf8'), /switch-2port-60/);
    writeFileSync(join(dir, 'bad.json'), '{"not": "an array"}');
    r = spawnSync(process.execPath, [cli!, 'bench', '--from', join(dir, 'bad.json'), '--svg', join(dir, 'out')], { encoding: 'utf8' });
    assert.equal(r.status, 2);
    assert.match(r.stderr, /expected the JSON array a 'wasmap bench … --json' run prints/);
    r = spawnSync(process.execPath, [cli!, 'bench', '--from', join(dir, 'r.json')], { encoding: 'utf8' });
    assert.match(r.stderr, /give --svg DIR too/);
  } finally { rmSync(dir, { recursive: true, force: true }); }
});

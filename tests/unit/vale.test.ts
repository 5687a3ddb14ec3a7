// netmap's VALE lifecycle scenarios (utils/tests 009-011) and ctrl-api cases, replayed on the
// Vale registry: switches on first use, persistent ports, the errors netmap gives.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Datapath } from '../../src/datapath.js';
import { Vale, MAX_PERSISTENT } from '../../src/vale.js';

const code = (f: () => unknown) => { try { f(); return 'ok'; } catch (e) { return (e as { code?: string }).code ?? 'throw'; } };

test('a switch appears with its first port and goes with its last', () => {
  const v = new Vale(new Datapath());
  v.attach('vale3:a');
  v.attach('vale3:b');
  assert.deepEqual(v.switchNames(), ['vale3']);
  assert.deepEqual(v.list().map((e) => [e.name, e.index]), [['vale3:a', 0], ['vale3:b', 1]]);
  v.detach('vale3:a');
  v.detach('vale3:b');
  assert.deepEqual(v.switchNames(), []);
  assert.equal(code(() => v.detach('vale3:a')), 'ENOENT');
});

test('009: persistent port lifecycle', () => {
  const dp = new Datapath();
  const v = new Vale(dp);
  const start = dp.allocated;
  assert.equal(code(() => v.newif('per4')), 'ok');
  assert.equal(code(() => v.delif('per4')), 'ok');
  assert.equal(code(() => v.newif('per4')), 'ok');
  assert.equal(code(() => v.attach('valeA:per4')), 'ok');
  assert.equal(code(() => v.delif('per4')), 'EBUSY');
  assert.equal(code(() => v.attach('valeB:per4')), 'EBUSY', 'one switch at a time (netmap would bwrap it)');
  assert.equal(code(() => v.detach('valeA:per4')), 'ok');
  assert.equal(code(() => v.delif('per4')), 'ok');
  assert.equal(dp.allocated, start, 'everything freed');
});

test('010: attaching a port twice fails', () => {
  const v = new Vale(new Datapath());
  assert.equal(code(() => v.attach('valeA:p')), 'ok');
  assert.equal(code(() => v.attach('valeA:p')), 'EBUSY');
  assert.equal(code(() => v.attach('valeB:p')), 'ok', 'an ephemeral port of the same name on another switch is another port');
});

test('011: creating a persistent port twice fails; bad names are refused', () => {
  const v = new Vale(new Datapath());
  assert.equal(code(() => v.newif('p1')), 'ok');
  assert.equal(code(() => v.newif('p1')), 'EEXIST');
  assert.equal(code(() => v.newif('vale9')), 'EINVAL');
  assert.equal(code(() => v.newif('abcdefghijklmnop')), 'EINVAL');
  assert.equal(code(() => v.delif('nope')), 'ENXIO');
  assert.equal(code(() => v.attach('netmap:eth0')), 'EINVAL');
  assert.equal(code(() => v.attach('vale0:x{1')), 'EINVAL');
});

test('a persistent port keeps its region (and what is in it) across attachments', () => {
  const v = new Vale(new Datapath());
  const region = v.newif('keep');
  const p = v.attach('vale0:keep');
  assert.equal(p.region, region);
  p.send([new Uint8Array(60).fill(7)]);
  v.detach('vale0:keep');
  const again = v.attach('vale1:keep');
  assert.equal(again.region, region);
  assert.equal(again.tx.head, 1, 'ring state kept while detached');
  v.close();
});

test('persistent ports are capped (a control client cannot fill the memory with newif), delif frees a place', () => {
  const dp = new Datapath();
  const v = new Vale(dp);
  for (let i = 0; i < MAX_PERSISTENT; i++) v.newif(`p${i}`, { slots: 8, bufSize: 64 });
  const before = dp.allocated;
  assert.equal(code(() => v.newif('one_more', { slots: 8, bufSize: 64 })), 'ENOSPC');
  assert.equal(dp.allocated, before, 'a refused newif allocates nothing');
  v.delif('p0');
  assert.equal(code(() => v.newif('one_more', { slots: 8, bufSize: 64 })), 'ok');
});

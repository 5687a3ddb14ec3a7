// The embeddable module in a real browser: headless Chromium loads a page from localhost
// (cross-origin isolated, so SharedArrayBuffer works) that runs the switch in the page and
// two Web Workers as its ports over one shared memory; the frame counts must balance.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, Server } from 'node:http';
import { readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join, dirname, extname } from 'node:path';
import { findBuildFile } from '../../src/paths.js';

const CHROMIUM = '/usr/bin/chromium';
const required = process.env.WASMAP_REQUIRE_NET === '1';
const why = !existsSync(CHROMIUM) ? 'no Chromium (apt-get install chromium)' : '';
const skip = why && !required ? why : false;

test('two Web Workers exchange frames through the switch in a page; counts balance', { skip, timeout: 120000 }, async () => {
  assert.ok(existsSync(CHROMIUM), `needs ${CHROMIUM}: apt-get install chromium`);
  const index = findBuildFile('browser/index.html');
  assert.ok(index, 'build/browser/ exists (npm run build)');
  const dir = dirname(index);
  const types: Record<string, string> = { '.html': 'text/html', '.mjs': 'text/javascript', '.wasm': 'application/wasm' };
  const server: Server = createServer(async (req, res) => {
    const name = (req.url ?? '/').split('?')[0].replace(/^\/+/, '') || 'index.html';
    if (name.includes('..')) { res.writeHead(400).end(); return; }
    try {
      const body = await readFile(join(dir, name));
      res.writeHead(200, { 'content-type': types[extname(name)] ?? 'application/octet-stream',
        'cross-origin-opener-policy': 'same-origin', 'cross-origin-embedder-policy': 'require-corp' });
      res.end(body);
    } catch { res.writeHead(404).end(); }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'] });
  try {
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`http://127.0.0.1:${port}/index.html`);
    await page.waitForFunction(() => (window as unknown as { wasmapResult?: unknown }).wasmapResult !== undefined, undefined, { timeout: 60000 });
    const r = await page.evaluate(() => (window as unknown as { wasmapResult: unknown }).wasmapResult) as {
      error?: string; crossOriginIsolated: boolean; floodExtra: number;
      workers: { sent: number; received: number; bad: number }[]; ports: { tx: number; rx: number; drops: number }[] };
    assert.equal(r.error, undefined, `page error: ${r.error} ${errors.join('; ')}`);
    assert.equal(r.crossOriginIsolated, true);
    const [w0, w1] = r.workers, [p0, p1] = r.ports;
    assert.equal(w0.sent, 300 * 32);
    assert.equal(w1.sent, 300 * 32);
    assert.equal(w0.bad + w1.bad, 0, 'every frame arrived in order, from the right sender');
    assert.equal(p0.tx + p1.tx, w0.sent + w1.sent, 'the switch took every frame sent');
    assert.equal(w0.received + w1.received, p0.rx + p1.rx, 'the workers got every frame delivered');
    assert.equal(p0.tx + p1.tx + r.floodExtra, p0.rx + p1.rx + p0.drops + p1.drops, 'sent = received + drops');
    assert.equal(w1.received, w0.sent, 'no drops between two ports with room');
  } finally {
    await browser.close();
    server.close();
  }
});

// Benchmark results as SVG charts (`wasmap bench … --svg DIR`, or `--from FILE.json` to draw
// what an earlier `--json` run printed): plain SVG text, no dependency, readable on GitHub.
// In-process runs give a bar chart of every scenario's Mpps and the batch sweep curve; the
// real-kernel runs (--netns) give TCP Gbit/s, 64-byte Mpps and RTT per path, wasmap's paths
// in one colour and the peers (Linux bridge, C, DPDK, Open vSwitch) in another.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface Bar { name: string; value: number; ours: boolean; note?: string }

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const OURS = '#2f6fd6', PEER = '#9aa3ad', FONT = 'font-family="sans-serif" font-size="12"';

/** A nice step for an axis up to `max` (1, 2 or 5 × 10^k), about 5 ticks. */
function step(max: number): number {
  const raw = max / 5, k = 10 ** Math.floor(Math.log10(raw || 1));
  return [1, 2, 5, 10].map((m) => m * k).find((s) => s >= raw) ?? raw;
}

/** Horizontal bars, one per row, value printed at the end: names stay readable however long. */
export function barChart(title: string, unit: string, bars: Bar[]): string {
  const rowH = 22, left = 210, width = 720, plotW = width - left - 80, top = 40;
  const max = Math.max(...bars.map((b) => b.value), 1e-9), st = step(max), axisMax = Math.ceil(max / st) * st;
  const h = top + bars.length * rowH + 40;
  const x = (v: number) => left + (v / axisMax) * plotW;
  const out = [`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${h}" viewBox="0 0 ${width} ${h}" ${FONT}>`,
    `<rect width="100%" height="100%" fill="white"/>`, `<text x="10" y="22" font-size="15" font-weight="bold">${esc(title)}</text>`];
  for (let v = 0; v <= axisMax + 1e-9; v += st) {
    out.push(`<line x1="${x(v)}" y1="${top - 4}" x2="${x(v)}" y2="${top + bars.length * rowH}" stroke="#e3e6ea"/>`,
      `<text x="${x(v)}" y="${top + bars.length * rowH + 16}" text-anchor="middle" fill="#555">${+v.toFixed(6)}</text>`);
  }
  bars.forEach((b, i) => {
    const y = top + i * rowH;
    out.push(`<text x="${left - 8}" y="${y + 15}" text-anchor="end">${esc(b.name)}</text>`,
      `<rect x="${left}" y="${y + 3}" width="${Math.max(0.5, x(b.value) - left)}" height="${rowH - 6}" fill="${b.ours ? OURS : PEER}"><title>${esc(b.note ?? b.name)}</title></rect>`,
      `<text x="${x(b.value) + 5}" y="${y + 15}" fill="#222">${b.value >= 100 ? b.value.toFixed(0) : b.value >= 10 ? b.value.toFixed(1) : b.value.toFixed(2)}</text>`);
  });
  out.push(`<text x="${left + plotW / 2}" y="${h - 6}" text-anchor="middle" fill="#555">${esc(unit)}   <tspan fill="${OURS}">■ wasmap</tspan>   <tspan fill="${PEER}">■ reference / peer</tspan></text>`, '</svg>');
  return out.join('\n') + '\n';
}

/** A line through points over a log2 x axis (batch sizes). */
export function lineChart(title: string, xLabel: string, yLabel: string, pts: { x: number; y: number }[]): string {
  const width = 720, h = 380, left = 60, right = 20, top = 40, bottom = 50, plotW = width - left - right, plotH = h - top - bottom;
  const xs = pts.map((p) => Math.log2(p.x)), x0 = Math.min(...xs), x1 = Math.max(...xs, x0 + 1);
  const max = Math.max(...pts.map((p) => p.y), 1e-9), st = step(max), axisMax = Math.ceil(max / st) * st;
  const X = (v: number) => left + ((Math.log2(v) - x0) / (x1 - x0)) * plotW, Y = (v: number) => top + plotH - (v / axisMax) * plotH;
  const out = [`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${h}" viewBox="0 0 ${width} ${h}" ${FONT}>`,
    `<rect width="100%" height="100%" fill="white"/>`, `<text x="10" y="22" font-size="15" font-weight="bold">${esc(title)}</text>`];
  for (let v = 0; v <= axisMax + 1e-9; v += st) out.push(`<line x1="${left}" y1="${Y(v)}" x2="${left + plotW}" y2="${Y(v)}" stroke="#e3e6ea"/>`, `<text x="${left - 6}" y="${Y(v) + 4}" text-anchor="end" fill="#555">${+v.toFixed(6)}</text>`);
  for (const p of pts) out.push(`<text x="${X(p.x)}" y="${top + plotH + 16}" text-anchor="middle" fill="#555">${p.x}</text>`);
  out.push(`<polyline fill="none" stroke="${OURS}" stroke-width="2" points="${pts.map((p) => `${X(p.x).toFixed(1)},${Y(p.y).toFixed(1)}`).join(' ')}"/>`);
  for (const p of pts) out.push(`<circle cx="${X(p.x).toFixed(1)}" cy="${Y(p.y).toFixed(1)}" r="3" fill="${OURS}"><title>${p.x}: ${p.y}</title></circle>`);
  out.push(`<text x="${left + plotW / 2}" y="${h - 10}" text-anchor="middle" fill="#555">${esc(xLabel)}</text>`,
    `<text x="14" y="${top + plotH / 2}" text-anchor="middle" fill="#555" transform="rotate(-90 14 ${top + plotH / 2})">${esc(yLabel)}</text>`, '</svg>');
  return out.join('\n') + '\n';
}

type Row = Record<string, unknown> & { name: string };
const isPeer = (name: string) => !name.startsWith('wasmap') && !name.startsWith('switch') && !name.startsWith('pipe') && !name.startsWith('passthrough') && !name.startsWith('router') && !name.startsWith('tso') && !name.startsWith('csum') && !name.startsWith('vm-');

/** Write the charts for one benchmark's results into `dir`; returns the files written. */
export function writeCharts(dir: string, results: Row[]): string[] {
  mkdirSync(dir, { recursive: true });
  const files: string[] = [];
  const put = (name: string, svg: string) => { const f = join(dir, name); writeFileSync(f, svg); files.push(f); };
  const measured = results.filter((r) => !r.skipped && Number(r.runs ?? 1) > 0);
  if (measured.some((r) => 'rtt_us' in r)) { // --netns
    const bars = (k: string) => measured.map((r) => ({ name: r.name, value: Number(r[k]), ours: !isPeer(r.name), note: String(r.note ?? '') }));
    put('netns-tcp.svg', barChart('TCP between two namespaces (iperf3, one stream)', 'Gbit/s', bars('gbps')));
    put('netns-64b.svg', barChart('64-byte frames delivered (trafgen, one core)', 'Mpps', bars('mpps')));
    put('netns-rtt.svg', barChart('ping round trip (lower is better)', 'µs', bars('rtt_us')));
    return files;
  }
  const sweep = measured.filter((r) => r.name === 'switch-batch-sweep');
  if (sweep.length) put('batch-sweep.svg', lineChart('VALE switch, 2 ports, 60-byte frames: Mpps by batch size', 'batch = burst (frames per round)', 'Mpps', sweep.map((r) => ({ x: Number(r.batch), y: Number(r.mpps) }))));
  const rest = measured.filter((r) => r.name !== 'switch-batch-sweep' && Number(r.mpps) > 0);
  if (rest.length) put('scenarios.svg', barChart('In-process datapath scenarios (one thread)', 'Mpps (million frames per second)', rest.map((r) => ({ name: r.name, value: Number(r.mpps), ours: !r.name.startsWith('native'), note: String(r.note ?? '') }))));
  return files;
}

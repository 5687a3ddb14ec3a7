// Terminal output helpers: rates in pkt-gen's units, aligned tables, optional colour.
const useColor = process.stdout.isTTY && !process.env.NO_COLOR;
export const c = {
  bold: (s: string) => (useColor ? `\x1b[1m${s}\x1b[22m` : s),
  dim: (s: string) => (useColor ? `\x1b[2m${s}\x1b[22m` : s),
  green: (s: string) => (useColor ? `\x1b[32m${s}\x1b[39m` : s),
  red: (s: string) => (useColor ? `\x1b[31m${s}\x1b[39m` : s),
  cyan: (s: string) => (useColor ? `\x1b[36m${s}\x1b[39m` : s),
};

/** pkt-gen's norm(): '14.880 M' style, steps of 1000. */
export function norm(x: number, unit: string): string {
  const units = ['', 'K', 'M', 'G', 'T'];
  let i = 0;
  while (Math.abs(x) >= 1000 && i < units.length - 1) { x /= 1000; i++; }
  return `${x.toFixed(3)} ${units[i]}${unit}`;
}

export function table(head: string[], rows: (string | number | bigint)[][], align: ('l' | 'r')[] = []): string {
  const cells = [head, ...rows.map((r) => r.map(String))];
  const w = head.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  const fmt = (r: string[]) => r.map((s, i) => ((align[i] ?? (i === 0 ? 'l' : 'r')) === 'l' ? s.padEnd(w[i]) : s.padStart(w[i]))).join('  ');
  const line = w.map((n) => '─'.repeat(n)).join('  ');
  return [c.bold(fmt(head)), line, ...cells.slice(1).map(fmt)].join('\n');
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

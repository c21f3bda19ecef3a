/**
 * A small SVG line chart with two y axes, written by bench/submit.ts for docs/PERFORMANCE.md:
 * throughput (left axis) and p95 latency (right axis) against load, for hookrelay and for
 * the raw baseline. No dependencies: the chart is a few dozen SVG elements.
 */

export interface Series {
  name: string;
  axis: 'left' | 'right';
  color: string;
  dashed?: boolean;
  points: Array<[number, number]>;
}

const W = 720;
const H = 400;
const M = { top: 48, right: 72, bottom: 56, left: 72 };

function niceMax(v: number): number {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

export function lineChart(opts: { title: string; xLabel: string; leftLabel: string; rightLabel: string; series: Series[] }): string {
  const xs = [...new Set(opts.series.flatMap((s) => s.points.map((p) => p[0])))].sort((a, b) => a - b);
  const leftMax = niceMax(Math.max(0, ...opts.series.filter((s) => s.axis === 'left').flatMap((s) => s.points.map((p) => p[1]))));
  const rightMax = niceMax(Math.max(0, ...opts.series.filter((s) => s.axis === 'right').flatMap((s) => s.points.map((p) => p[1]))));
  const pw = W - M.left - M.right;
  const ph = H - M.top - M.bottom;
  // Load levels are usually powers of two: a log scale spaces them evenly.
  const lx = (x: number) => Math.log2(x);
  const x0 = lx(xs[0] ?? 1);
  const x1 = lx(xs[xs.length - 1] ?? 2);
  const sx = (x: number) => M.left + (x1 === x0 ? pw / 2 : ((lx(x) - x0) / (x1 - x0)) * pw);
  const sy = (y: number, max: number) => M.top + ph - (y / max) * ph;
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`);
  parts.push(`<rect width="${W}" height="${H}" fill="#fff"/>`);
  parts.push(`<text x="${W / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">${esc(opts.title)}</text>`);
  for (let i = 0; i <= 5; i++) {
    const y = M.top + ph - (i / 5) * ph;
    parts.push(`<line x1="${M.left}" x2="${M.left + pw}" y1="${y}" y2="${y}" stroke="#e5e5e5"/>`);
    parts.push(`<text x="${M.left - 8}" y="${y + 4}" text-anchor="end">${round(leftMax * (i / 5))}</text>`);
    parts.push(`<text x="${M.left + pw + 8}" y="${y + 4}">${round(rightMax * (i / 5))}</text>`);
  }
  for (const x of xs) {
    parts.push(`<line x1="${sx(x)}" x2="${sx(x)}" y1="${M.top + ph}" y2="${M.top + ph + 5}" stroke="#333"/>`);
    parts.push(`<text x="${sx(x)}" y="${M.top + ph + 20}" text-anchor="middle">${x}</text>`);
  }
  parts.push(`<rect x="${M.left}" y="${M.top}" width="${pw}" height="${ph}" fill="none" stroke="#333"/>`);
  parts.push(`<text x="${M.left + pw / 2}" y="${H - 12}" text-anchor="middle">${esc(opts.xLabel)}</text>`);
  parts.push(`<text transform="translate(18 ${M.top + ph / 2}) rotate(-90)" text-anchor="middle">${esc(opts.leftLabel)}</text>`);
  parts.push(`<text transform="translate(${W - 12} ${M.top + ph / 2}) rotate(-90)" text-anchor="middle">${esc(opts.rightLabel)}</text>`);
  opts.series.forEach((s, i) => {
    const max = s.axis === 'left' ? leftMax : rightMax;
    const pts = [...s.points].sort((a, b) => a[0] - b[0]).map(([x, y]) => `${sx(x).toFixed(1)},${sy(y, max).toFixed(1)}`);
    parts.push(`<polyline fill="none" stroke="${s.color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ''} points="${pts.join(' ')}"/>`);
    for (const p of pts) {
      const [cx, cy] = p.split(',');
      parts.push(`<circle cx="${cx}" cy="${cy}" r="3" fill="${s.color}"/>`);
    }
    const ly = M.top + 14 + i * 16;
    parts.push(`<line x1="${M.left + 10}" x2="${M.left + 34}" y1="${ly - 4}" y2="${ly - 4}" stroke="${s.color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ''}/>`);
    parts.push(`<text x="${M.left + 40}" y="${ly}">${esc(s.name)}</text>`);
  });
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}

function round(n: number): string {
  return Number.isInteger(n) ? String(n) : n.toFixed(1);
}

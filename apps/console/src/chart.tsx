/** A time-series line chart (uPlot) of performance-trend buckets. */
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { useEffect, useRef } from 'preact/hooks';

export interface Series {
  readonly label: string;
  readonly points: readonly { t: number; v: number | null }[];
}

const COLORS = ['#1d4ed8', '#b91c1c', '#047857', '#7c3aed', '#b45309', '#0e7490', '#be185d', '#4b5563'];

export function Chart({ title, series, unit }: { title: string; series: readonly Series[]; unit: string }) {
  const el = useRef<HTMLDivElement>(null);
  useEffect(() => {
    if (!el.current) return;
    const times = [...new Set(series.flatMap((s) => s.points.map((p) => p.t)))].sort((a, b) => a - b);
    const data: (number | null)[][] = [times.map((t) => t / 1000)];
    for (const s of series) {
      const m = new Map(s.points.map((p) => [p.t, p.v]));
      data.push(times.map((t) => m.get(t) ?? null));
    }
    const plot = new uPlot(
      {
        width: Math.max(280, el.current.clientWidth || 420),
        height: 180,
        series: [
          {},
          ...series.map((s, i) => ({ label: s.label, stroke: COLORS[i % COLORS.length], width: 1.5, spanGaps: true })),
        ],
        axes: [{}, { values: (_u: uPlot, vals: number[]) => vals.map((v) => `${+v.toFixed(2)}${unit}`), size: 70 }],
        scales: { x: { time: true } },
      },
      data as uPlot.AlignedData,
      el.current,
    );
    return () => plot.destroy();
  }, [series, unit]);
  return (
    <figure class="chart">
      <figcaption>{title}</figcaption>
      {series.length === 0 || series.every((s) => s.points.length === 0) ? (
        <p class="muted">no samples in this window yet</p>
      ) : null}
      <div ref={el} />
    </figure>
  );
}

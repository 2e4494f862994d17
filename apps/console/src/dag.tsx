/** A workflow's steps as a DAG (dagre layout, SVG), each step coloured by its state and clickable. */
import dagre from '@dagrejs/dagre';
import { useMemo } from 'preact/hooks';

export interface DagStep {
  readonly id: string;
  readonly needs: readonly string[];
  readonly uses?: string;
  readonly status?: string;
}

const W = 196;
const H = 46;

/** Colours chosen for contrast with dark text (WCAG AA); the state is also written in each box. */
export const STATUS_FILL: Record<string, string> = {
  pending: '#e5e7eb',
  scheduled: '#e5e7eb',
  running: '#bfdbfe',
  dispatched: '#bfdbfe',
  retry_wait: '#fde68a',
  succeeded: '#bbf7d0',
  completed: '#bbf7d0',
  failed: '#fecaca',
  skipped: '#f3f4f6',
  canceled: '#fed7aa',
  canceling: '#fed7aa',
};

export function Dag({
  steps,
  selected,
  onSelect,
  label,
}: {
  steps: readonly DagStep[];
  selected?: string | null;
  onSelect?: (id: string) => void;
  label: string;
}) {
  const layout = useMemo(() => {
    const g = new dagre.graphlib.Graph();
    g.setGraph({ rankdir: 'LR', nodesep: 18, ranksep: 50, marginx: 8, marginy: 8 });
    g.setDefaultEdgeLabel(() => ({}));
    const ids = new Set(steps.map((s) => s.id));
    for (const s of steps) g.setNode(s.id, { width: W, height: H });
    for (const s of steps) for (const n of s.needs) if (ids.has(n)) g.setEdge(n, s.id);
    try {
      dagre.layout(g);
    } catch {
      // A cycle or a bad reference: lay the steps out in a row rather than draw nothing.
      steps.forEach((s, i) => Object.assign(g.node(s.id), { x: 8 + W / 2 + i * (W + 20), y: 8 + H / 2 }));
    }
    const info = g.graph() as { width?: number; height?: number };
    return {
      nodes: steps.map((s) => ({ ...s, x: g.node(s.id).x, y: g.node(s.id).y })),
      edges: g
        .edges()
        .map((e) => ({ from: e.v, to: e.w, points: (g.edge(e).points ?? []) as { x: number; y: number }[] })),
      width: Math.max(info.width ?? W + 16, W + 16),
      height: Math.max(info.height ?? H + 16, H + 16),
    };
  }, [steps]);
  return (
    <div class="dag" data-testid="dag" tabIndex={0} role="region" aria-label={`${label} (scrollable)`}>
      <svg
        width={layout.width}
        height={layout.height}
        viewBox={`0 0 ${layout.width} ${layout.height}`}
        role="group"
        aria-label={label}
      >
        <defs>
          <marker
            id="arrow"
            viewBox="0 0 10 10"
            refX="9"
            refY="5"
            markerWidth="6"
            markerHeight="6"
            orient="auto-start-reverse"
          >
            <path d="M 0 0 L 10 5 L 0 10 z" fill="#6b7280" />
          </marker>
        </defs>
        {layout.edges.map((e) => (
          <polyline
            key={`${e.from}-${e.to}`}
            points={e.points.map((p) => `${p.x},${p.y}`).join(' ')}
            fill="none"
            stroke="#6b7280"
            stroke-width="1.5"
            marker-end="url(#arrow)"
          />
        ))}
        {layout.nodes.map((n) => {
          const status = n.status ?? 'pending';
          return (
            <g
              key={n.id}
              class={`node${selected === n.id ? ' selected' : ''}`}
              data-step={n.id}
              data-status={status}
              transform={`translate(${n.x - W / 2},${n.y - H / 2})`}
              role="button"
              tabIndex={0}
              onClick={() => onSelect?.(n.id)}
              onKeyDown={(e) => (e.key === 'Enter' || e.key === ' ') && onSelect?.(n.id)}
            >
              <rect
                width={W}
                height={H}
                rx="6"
                fill={STATUS_FILL[status] ?? '#e5e7eb'}
                stroke={selected === n.id ? '#111827' : '#6b7280'}
                stroke-width={selected === n.id ? 2.5 : 1}
              />
              <text x="8" y="18" font-size="13" font-weight="600" fill="#111827">
                {n.id}
              </text>
              <text x="8" y="36" font-size="11" fill="#1f2937">
                {status}
              </text>
            </g>
          );
        })}
      </svg>
    </div>
  );
}

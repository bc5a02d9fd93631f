/**
 * Prometheus text exposition format (version 0.0.4: `# HELP`, `# TYPE`, one sample per line,
 * label values escaped) of the per-unit stats and the watcher's own numbers. Pure, so the
 * exact text is golden-tested; `wgsplit metrics` prints it and `wgsplit watch
 * --metrics-textfile` writes it for node_exporter's textfile collector.
 *
 * Names follow the Prometheus conventions: the `wgsplit_` prefix, base units (bytes,
 * seconds), `_total` for counters; labels `profile`, `family` ("ipv4", "ipv6") and, for
 * traffic, `direction` ("out": sent through the tunnel, "in": replies received through it).
 * Every name here is documented in wgsplit(8), METRICS (test/unit/man.test.ts checks).
 */
import type { UnitStats } from './stats.js';

/** What the watcher counts about itself (daemon/watch.ts). */
export interface WatcherStats {
  reconciles: number;
  /** reconciles that wrote to put back state someone else changed */
  repairs: number;
  /** reconciles that failed */
  errors: number;
  /** Unix time (seconds) the last reconcile finished, and how long it took */
  lastReconcileAt?: number;
  lastReconcileSeconds?: number;
  /** restarts of the kernel event sources: the `ip monitor` child and the `nft monitor` child */
  eventSourceRestarts: { ip: number; nft: number };
}

interface Family {
  name: string;
  help: string;
  type: 'gauge' | 'counter';
  samples: { labels: Record<string, string>; value: number }[];
}

/** Every metric name wgsplit can emit, for the man page check. */
export const METRIC_NAMES = [
  'wgsplit_profile_active',
  'wgsplit_profile_drift_objects',
  'wgsplit_profile_packets_total',
  'wgsplit_profile_bytes_total',
  'wgsplit_watch_reconciles_total',
  'wgsplit_watch_repairs_total',
  'wgsplit_watch_reconcile_errors_total',
  'wgsplit_watch_last_reconcile_timestamp_seconds',
  'wgsplit_watch_last_reconcile_duration_seconds',
  'wgsplit_watch_event_source_restarts_total',
] as const;

const escape = (v: string) => v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
const number = (v: number) => (Number.isInteger(v) ? String(v) : Number.isFinite(v) ? String(+v.toFixed(6)) : v > 0 ? '+Inf' : v < 0 ? '-Inf' : 'NaN');

export function renderMetrics(units: UnitStats[], watcher?: WatcherStats): string {
  const fam = (f: UnitStats) => ({ profile: f.profile, family: `ipv${f.family}` });
  const families: Family[] = [
    {
      name: 'wgsplit_profile_active',
      help: '1 while the profile applies to this family (its interface is up with an address in it), else 0.',
      type: 'gauge',
      samples: units.map((u) => ({ labels: fam(u), value: u.active ? 1 : 0 })),
    },
    {
      name: 'wgsplit_profile_drift_objects',
      help: 'Rules, routes and nftables objects that differ between the profile and the kernel (0: in sync).',
      type: 'gauge',
      samples: units.map((u) => ({ labels: fam(u), value: u.drift })),
    },
  ];
  for (const [what, field] of [
    ['packets', 'packets'],
    ['bytes', 'bytes'],
  ] as const) {
    families.push({
      name: `wgsplit_profile_${what}_total`,
      help: `${what === 'bytes' ? 'Bytes (whole IP packets)' : 'Packets'} that took the profile's path, counted by the kernel: direction out = sent through the tunnel, in = replies received through it.`,
      type: 'counter',
      samples: units.flatMap((u) =>
        (['out', 'in'] as const).flatMap((d) => {
          const c = u.counters?.[d];
          return c ? [{ labels: { ...fam(u), direction: d }, value: c[field] }] : [];
        }),
      ),
    });
  }
  if (watcher) {
    const one = (name: string, help: string, type: Family['type'], value: number | undefined) => families.push({ name, help, type, samples: value === undefined ? [] : [{ labels: {}, value }] });
    one('wgsplit_watch_reconciles_total', 'Reconciles the watcher ran.', 'counter', watcher.reconciles);
    one('wgsplit_watch_repairs_total', 'Reconciles that wrote to put back state another program changed.', 'counter', watcher.repairs);
    one('wgsplit_watch_reconcile_errors_total', 'Reconciles that failed.', 'counter', watcher.errors);
    one('wgsplit_watch_last_reconcile_timestamp_seconds', 'Unix time the last reconcile finished.', 'gauge', watcher.lastReconcileAt);
    one('wgsplit_watch_last_reconcile_duration_seconds', 'How long the last reconcile took.', 'gauge', watcher.lastReconcileSeconds);
    families.push({
      name: 'wgsplit_watch_event_source_restarts_total',
      help: 'Restarts of a kernel event source: source ip = the ip monitor child (links, addresses, routes, rules), nft = the nft monitor child.',
      type: 'counter',
      samples: (['ip', 'nft'] as const).map((source) => ({ labels: { source }, value: watcher.eventSourceRestarts[source] })),
    });
  }
  const lines: string[] = [];
  for (const f of families) {
    lines.push(`# HELP ${f.name} ${f.help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}`, `# TYPE ${f.name} ${f.type}`);
    for (const s of f.samples) {
      const labels = Object.entries(s.labels).map(([k, v]) => `${k}="${escape(v)}"`);
      lines.push(`${f.name}${labels.length ? `{${labels.join(',')}}` : ''} ${number(s.value)}`);
    }
  }
  return lines.join('\n') + '\n';
}

/**
 * Who keeps deleting our rules? Names the likely program and the fix, for the warning the
 * watcher logs when it has to rate-limit repairs. Reads /proc only.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { readRegularFile } from '../profile/readText.js';

/** A networkd config file's text; anything but a small regular file counts as empty (a FIFO must not hang `status`). */
const confText = (path: string) => {
  const r = readRegularFile(path, 1 << 20);
  return r.ok ? r.text : '';
};

export interface Suspect {
  name: string;
  fix: string;
}

const KNOWN: Record<string, Suspect> = {
  'systemd-network': {
    name: 'systemd-networkd',
    fix: 'it deletes routing rules it did not make (ManageForeignRoutingPolicyRules=yes, the default since v248): install hooks/networkd/wgsplit.conf as /etc/systemd/networkd.conf.d/wgsplit.conf and restart systemd-networkd',
  },
  NetworkManager: {
    name: 'NetworkManager',
    fix: 'it may remove foreign routing rules when it reconfigures a connection: install hooks/NetworkManager/90-wgsplit as /etc/NetworkManager/dispatcher.d/90-wgsplit so wgsplit re-applies after it',
  },
  'unifi-core': { name: 'UniFi', fix: 'UniFi OS rewrites policy routing on every provisioning; run wgsplit from its on-boot hook' },
};

export function runningProcesses(): Set<string> {
  const out = new Set<string>();
  try {
    for (const pid of readdirSync('/proc')) {
      if (!/^\d+$/.test(pid)) continue;
      try {
        out.add(readFileSync(`/proc/${pid}/comm`, 'utf8').trim());
      } catch {
        /* exited */
      }
    }
  } catch {
    /* no /proc */
  }
  return out;
}

export function suspects(processes: Set<string> = runningProcesses()): Suspect[] {
  return Object.entries(KNOWN)
    .filter(([comm]) => processes.has(comm))
    .map(([, s]) => s);
}

/** systemd-networkd present and not told to leave foreign rules alone: status suggests the drop-in. */
export function networkdNeedsDropIn(processes: Set<string> = runningProcesses()): boolean {
  if (!processes.has('systemd-network')) return false;
  for (const dir of ['/etc/systemd/networkd.conf.d', '/run/systemd/networkd.conf.d']) {
    try {
      for (const f of readdirSync(dir)) if (/ManageForeignRoutingPolicyRules\s*=\s*(no|false|0)/i.test(confText(`${dir}/${f}`))) return false;
    } catch {
      /* no such dir */
    }
  }
  if (/^\s*ManageForeignRoutingPolicyRules\s*=\s*(no|false|0)/im.test(confText('/etc/systemd/networkd.conf'))) return false;
  return true;
}

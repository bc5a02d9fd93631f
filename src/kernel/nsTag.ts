/**
 * net.ipv4.conf.lo.tag through /proc/sys. /proc/sys/net is always the namespace of the
 * process that opens it, so this reads and writes the caller's namespace. The kernel keeps
 * the value per interface and namespace and never acts on it (ip-sysctl.rst: "allows you to
 * write a number, which can be used as required"); lo exists in every namespace.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import type { NamespaceTag } from './port.js';

const PATH = '/proc/sys/net/ipv4/conf/lo/tag';

export const loTag: NamespaceTag = {
  read() {
    try {
      const v = Number(readFileSync(PATH, 'utf8').trim());
      return Number.isInteger(v) ? v : undefined;
    } catch {
      return undefined;
    }
  },
  write(v: number) {
    writeFileSync(PATH, String(v));
  },
};

/**
 * Prefix list files (`include_files` / `exclude_files`): one prefix per line, `#` starts a
 * comment, blank lines ignored. Pure: load.ts reads the file. Country lists run to tens of
 * thousands of lines, so this avoids per-line regexes where it can.
 */
import type { Problem } from '../errors.js';
import { parsePrefix, type Prefix } from '../model/prefix.js';

export function parseListFile(file: string, text: string, maxProblems = 20): { prefixes: Prefix[]; problems: Problem[] } {
  const prefixes: Prefix[] = [];
  const problems: Problem[] = [];
  let lineNo = 0;
  let extra = 0;
  for (const raw of text.split('\n')) {
    lineNo++;
    const hash = raw.indexOf('#');
    const body = (hash >= 0 ? raw.slice(0, hash) : raw).trim();
    if (!body) continue;
    const r = parsePrefix(body);
    if (r.ok) prefixes.push(r.prefix);
    else if (problems.length < maxProblems) problems.push({ file, line: lineNo, col: raw.indexOf(body) + 1, message: r.reason });
    else extra++;
  }
  if (extra) problems.push({ file, line: lineNo, col: 1, message: `... and ${extra} more bad line${extra > 1 ? 's' : ''}` });
  return { prefixes, problems };
}

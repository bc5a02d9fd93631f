/**
 * Maps a key path in a flat TOML profile (`key` or `key[index]`) back to a 1-based line and
 * column in the source, so every problem can be reported as file:line:col. @iarna/toml
 * gives positions only for syntax errors; profiles are flat (top-level keys with scalar or
 * array values), so a small scanner over the source text is enough and exact.
 */
export interface Position {
  line: number;
  col: number;
}

function positionAt(text: string, offset: number): Position {
  let line = 1;
  let lineStart = 0;
  for (let i = 0; i < offset && i < text.length; i++) {
    if (text[i] === '\n') {
      line++;
      lineStart = i + 1;
    }
  }
  return { line, col: offset - lineStart + 1 };
}

/** Offset of the top-level `key =` line's key, or -1. Handles bare and quoted keys. */
function keyOffset(text: string, key: string): number {
  const esc = key.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const re = new RegExp(`^[ \\t]*(?:${esc}|"${esc}"|'${esc}')[ \\t]*=`, 'm');
  const m = re.exec(text);
  if (!m) return -1;
  return m.index + m[0].length - m[0].trimStart().length;
}

/** Offset just after the `=` of a key, skipping whitespace: where its value starts. */
function valueOffset(text: string, kOff: number): number {
  let i = text.indexOf('=', kOff) + 1;
  while (i < text.length && (text[i] === ' ' || text[i] === '\t')) i++;
  return i;
}

/** Offset of element `index` of the array value starting at `start` (a `[`), or -1. */
function elementOffset(text: string, start: number, index: number): number {
  if (text[start] !== '[') return -1;
  let depth = 0;
  let element = -1;
  let expectingElement = false;
  for (let i = start; i < text.length; i++) {
    const c = text[i];
    if (c === '#') {
      while (i < text.length && text[i] !== '\n') i++;
      continue;
    }
    if (c === '[') {
      depth++;
      if (depth === 1) {
        expectingElement = true;
        continue;
      }
    }
    if (c === ']') {
      depth--;
      if (depth === 0) return -1;
    }
    if (depth === 1 && c === ',') {
      expectingElement = true;
      continue;
    }
    if (depth >= 1 && expectingElement && !/\s/.test(c)) {
      expectingElement = false;
      element++;
      if (element === index) return i;
    }
    if (c === '"' || c === "'") {
      // Skip the string, honouring backslash escapes in basic strings.
      const q = c;
      i++;
      while (i < text.length && text[i] !== q) {
        if (q === '"' && text[i] === '\\') i++;
        i++;
      }
    }
  }
  return -1;
}

/** Where `key` (and optionally its array element) is in `text`; line 1 col 1 if unknown. */
export function locate(text: string, key?: string, index?: number): Position {
  if (key === undefined) return { line: 1, col: 1 };
  const k = keyOffset(text, key);
  if (k < 0) return { line: 1, col: 1 };
  if (index === undefined) return positionAt(text, k);
  const e = elementOffset(text, valueOffset(text, k), index);
  return positionAt(text, e < 0 ? valueOffset(text, k) : e);
}

/** Where the value of `key` starts (for "must be a number"-type problems). */
export function locateValue(text: string, key: string): Position {
  const k = keyOffset(text, key);
  if (k < 0) return { line: 1, col: 1 };
  return positionAt(text, valueOffset(text, k));
}

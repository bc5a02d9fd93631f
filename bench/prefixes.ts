/**
 * Deterministic lists of random public IPv4 /24s for exclude_files. The third octet is
 * always even, so no two chosen /24s are siblings: wgsplit aggregates adjacent prefixes
 * before programming them, and the lists must stay N routes for a like-for-like comparison
 * with `ip -batch`. First octets that hold @private ranges (and 44/8, which the watcher
 * benchmark uses for its docker-like bridges) are skipped, so no generated prefix overlaps
 * wgsplit's default exclusions.
 */

const SKIP_FIRST = new Set([0, 10, 44, 100, 127, 169, 172, 192, 198, 203]);
const FIRST = Array.from({ length: 223 }, (_, i) => i + 1).filter((a) => !SKIP_FIRST.has(a));

/** mulberry32: a small seeded PRNG, so every run uses the same lists. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** N distinct, non-adjacent public /24s as "a.b.c.0/24", in random order. */
export function randomSlash24s(n: number, seed: number): string[] {
  const r = rng(seed);
  const seen = new Set<number>();
  const out: string[] = [];
  while (out.length < n) {
    const a = FIRST[Math.floor(r() * FIRST.length)];
    const b = Math.floor(r() * 256);
    const c = Math.floor(r() * 128) * 2;
    const key = (a << 16) | (b << 8) | c;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(`${a}.${b}.${c}.0/24`);
  }
  return out;
}

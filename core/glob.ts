/**
 * Redis-style glob matching (KEYS, SCAN MATCH, CONFIG GET): `*`, `?`, `[abc]`, `[^a]`, `[a-z]`
 * and `\x` escapes, over latin1 strings so any key bytes match.
 */
export function globMatch(pattern: string, text: string, nocase = false): boolean {
  const eq = (a: string, b: string) => (nocase ? a.toLowerCase() === b.toLowerCase() : a === b);
  const match = (p: number, t: number): boolean => {
    while (p < pattern.length) {
      const c = pattern[p];
      if (c === "*") {
        while (pattern[p + 1] === "*") p++;
        if (p + 1 === pattern.length) return true;
        for (let k = t; k <= text.length; k++) if (match(p + 1, k)) return true;
        return false;
      }
      if (t >= text.length) return false;
      if (c === "?") {
        p++;
        t++;
        continue;
      }
      if (c === "[") {
        let q = p + 1;
        const negate = pattern[q] === "^";
        if (negate) q++;
        let matched = false;
        while (q < pattern.length && pattern[q] !== "]") {
          if (pattern[q] === "\\" && q + 1 < pattern.length) {
            q++;
            if (eq(pattern[q], text[t])) matched = true;
          } else if (pattern[q + 1] === "-" && q + 2 < pattern.length && pattern[q + 2] !== "]") {
            let lo = pattern[q];
            let hi = pattern[q + 2];
            if (lo > hi) [lo, hi] = [hi, lo];
            const ch = nocase ? text[t].toLowerCase() : text[t];
            if (ch >= (nocase ? lo.toLowerCase() : lo) && ch <= (nocase ? hi.toLowerCase() : hi)) matched = true;
            q += 2;
          } else if (eq(pattern[q], text[t])) matched = true;
          q++;
        }
        if (negate) matched = !matched;
        if (!matched) return false;
        p = q + 1;
        t++;
        continue;
      }
      if (c === "\\" && p + 1 < pattern.length) p++;
      if (!eq(pattern[p], text[t])) return false;
      p++;
      t++;
    }
    return t === text.length;
  };
  return match(0, 0);
}

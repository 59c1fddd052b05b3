// "did you mean" hints for misspelt keys and names, as in `unknown pool "catalgo"
// (did you mean "catalog"?)`. Optimal string alignment distance (Damerau-Levenshtein
// restricted to adjacent transpositions) because transposed letters are the commonest typo.

/**
 * Returns the closest candidate to `word`, or `undefined` when none is reasonably close. A word
 * of three letters or more that only one candidate starts with (an abbreviation: `least-conn`
 * for `least-connections`) is that candidate when nothing is closer by edits.
 */
export function suggest(word: string, candidates: Iterable<string>): string | undefined {
  const limit = Math.max(2, Math.floor(word.length / 3));
  let best: string | undefined;
  let bestDistance = Infinity;
  const extending: string[] = [];
  for (const candidate of candidates) {
    if (candidate === word) continue;
    if (word.length >= 3 && candidate.toLowerCase().startsWith(word.toLowerCase())) extending.push(candidate);
    // Case-only differences count as distance 0.5 so "Targets" still finds "targets" first.
    const d = candidate.toLowerCase() === word.toLowerCase() ? 0.5 : editDistance(word, candidate);
    if (d <= limit && d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  return best ?? (extending.length === 1 ? extending[0] : undefined);
}

/** Returns the optimal string alignment distance between `a` and `b`. */
export function editDistance(a: string, b: string): number {
  const rows = a.length + 1;
  const cols = b.length + 1;
  const d: number[][] = Array.from({ length: rows }, (_, i) => {
    const row = new Array<number>(cols).fill(0);
    row[0] = i;
    return row;
  });
  for (let j = 0; j < cols; j++) d[0][j] = j;
  for (let i = 1; i < rows; i++) {
    for (let j = 1; j < cols; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[rows - 1][cols - 1];
}

import { expect, test } from 'vitest';
import { SmoothWeighted } from '../../src/balance/weighted.ts';

test('peek returns what next would return, and does not move the rotation', () => {
  const sw = new SmoothWeighted(['a', 'b', 'c'], [5, 1, 1]);
  const peeked: string[] = [];
  const taken: string[] = [];
  for (let i = 0; i < 14; i++) {
    peeked.push(sw.peek()!);
    peeked.push(sw.peek()!); // twice: still the same
    taken.push(sw.next()!);
  }
  expect(peeked.filter((_, i) => i % 2 === 0)).toEqual(taken);
  expect(peeked.filter((_, i) => i % 2 === 1)).toEqual(taken);
  expect(sw.peek((x) => x !== 'a')).not.toBe('a');
  expect(sw.peek(() => false)).toBeUndefined();
});

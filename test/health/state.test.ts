import { describe, expect, test } from 'vitest';
import { HealthState } from '../../src/health/state.ts';

// A sequence of probe results as a string: "+" success, "-" failure; `flips` lists the 1-based
// positions of the results that flipped the state.
const cases: { name: string; unhealthyAfter: number; healthyAfter: number; start?: boolean; seq: string; flips: number[]; end: boolean }[] = [
  { name: 'stays healthy on successes', unhealthyAfter: 3, healthyAfter: 2, seq: '+++++', flips: [], end: true },
  { name: 'turns unhealthy on the 3rd consecutive failure', unhealthyAfter: 3, healthyAfter: 2, seq: '---', flips: [3], end: false },
  { name: 'reports the flip once, not on every later failure', unhealthyAfter: 3, healthyAfter: 2, seq: '------', flips: [3], end: false },
  { name: 'a success resets the failure streak', unhealthyAfter: 3, healthyAfter: 2, seq: '--+--+--', flips: [], end: true },
  { name: 'needs 2 consecutive successes to come back', unhealthyAfter: 3, healthyAfter: 2, seq: '---++', flips: [3, 5], end: true },
  { name: 'a failure resets the success streak', unhealthyAfter: 3, healthyAfter: 2, seq: '---+-+-++', flips: [3, 9], end: true },
  { name: 'flips both ways repeatedly', unhealthyAfter: 2, healthyAfter: 2, seq: '--++--++', flips: [2, 4, 6, 8], end: true },
  { name: 'thresholds of 1 flip on every change of result', unhealthyAfter: 1, healthyAfter: 1, seq: '+-+--++-', flips: [2, 3, 4, 6, 8], end: false },
  { name: 'an initially unhealthy target needs healthyAfter successes', unhealthyAfter: 3, healthyAfter: 3, start: false, seq: '++-+++', flips: [6], end: true },
  { name: 'an initially unhealthy target does not flip on failures', unhealthyAfter: 1, healthyAfter: 2, start: false, seq: '---', flips: [], end: false },
];

describe('HealthState.observe', () => {
  test.each(cases)('$name ($seq)', ({ unhealthyAfter, healthyAfter, start, seq, flips, end }) => {
    const state = new HealthState({ unhealthyAfter, healthyAfter }, start);
    const flipped: number[] = [];
    [...seq].forEach((c, i) => {
      const before = state.healthy;
      if (state.observe(c === '+')) {
        flipped.push(i + 1);
        expect(state.healthy).toBe(!before);
      } else {
        expect(state.healthy).toBe(before);
      }
    });
    expect(flipped).toEqual(flips);
    expect(state.healthy).toBe(end);
  });

  test('starts healthy unless told otherwise', () => {
    expect(new HealthState({ unhealthyAfter: 3, healthyAfter: 2 }).healthy).toBe(true);
    expect(new HealthState({ unhealthyAfter: 3, healthyAfter: 2 }, false).healthy).toBe(false);
  });

  test('streak counts consecutive identical results and restarts on a change', () => {
    const state = new HealthState({ unhealthyAfter: 3, healthyAfter: 2 });
    expect(state.streak).toBe(0);
    const streaks = [...'++---+'].map((c) => (state.observe(c === '+'), state.streak));
    expect(streaks).toEqual([1, 2, 1, 2, 3, 1]);
  });
});

describe('HealthState.setThresholds', () => {
  test('keeps state and streak; a lowered threshold flips on the next agreeing result', () => {
    const state = new HealthState({ unhealthyAfter: 5, healthyAfter: 2 });
    expect([state.observe(false), state.observe(false), state.observe(false)]).toEqual([false, false, false]);
    state.setThresholds({ unhealthyAfter: 2, healthyAfter: 2 });
    // Changing thresholds is not a probe result: no flip until one arrives.
    expect(state.healthy).toBe(true);
    expect(state.streak).toBe(3);
    expect(state.observe(false)).toBe(true);
    expect(state.healthy).toBe(false);
  });

  test('a raised threshold needs the longer streak, counting the results already seen', () => {
    const state = new HealthState({ unhealthyAfter: 1, healthyAfter: 2 }, false);
    expect(state.observe(true)).toBe(false);
    state.setThresholds({ unhealthyAfter: 1, healthyAfter: 4 });
    expect([state.observe(true), state.observe(true)]).toEqual([false, false]);
    expect(state.observe(true)).toBe(true);
    expect(state.healthy).toBe(true);
  });

  test('keeps an unhealthy target unhealthy', () => {
    const state = new HealthState({ unhealthyAfter: 1, healthyAfter: 1 });
    state.observe(false);
    state.setThresholds({ unhealthyAfter: 3, healthyAfter: 3 });
    expect(state.healthy).toBe(false);
    expect(state.thresholds).toEqual({ unhealthyAfter: 3, healthyAfter: 3 });
  });

  test.each([0, -1, 1.5, Number.NaN])('refuses a threshold of %s', (n) => {
    expect(() => new HealthState({ unhealthyAfter: n, healthyAfter: 1 })).toThrow(RangeError);
    const state = new HealthState({ unhealthyAfter: 1, healthyAfter: 1 });
    expect(() => state.setThresholds({ unhealthyAfter: 1, healthyAfter: n })).toThrow(/healthyAfter/);
  });
});

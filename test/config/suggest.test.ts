import { describe, expect, it } from 'vitest';
import { editDistance, suggest } from '../../src/config/suggest.ts';

describe('suggest', () => {
  it('finds a transposition as one edit', () => {
    expect(editDistance('catalgo', 'catalog')).toBe(1);
    expect(suggest('catalgo', ['cart', 'catalog', 'search'])).toBe('catalog');
    expect(suggest('tragets', ['targets', 'balance'])).toBe('targets');
  });

  it('finds insertions, deletions and substitutions', () => {
    expect(suggest('balanse', ['targets', 'balance'])).toBe('balance');
    expect(suggest('healthChek', ['healthCheck', 'h2'])).toBe('healthCheck');
    expect(suggest('retires', ['retries', 'h2'])).toBe('retries');
    expect(suggest('pools', ['pool', 'routes'])).toBe('pool');
  });

  it('prefers the closest candidate and a case-only difference above all', () => {
    expect(suggest('pol', ['pool', 'poll2'])).toBe('pool');
    expect(suggest('Targets', ['targets', 'Target'])).toBe('targets');
  });

  it('suggests nothing when no candidate is close, or there are none', () => {
    expect(suggest('zzzz', ['catalog', 'search'])).toBeUndefined();
    expect(suggest('frobnicate', ['targets', 'balance', 'sticky'])).toBeUndefined();
    expect(suggest('x', [])).toBeUndefined();
  });

  it('completes an abbreviation only one candidate starts with', () => {
    expect(suggest('least-conn', ['round-robin', 'least-connections', 'ip-hash', 'random-two'])).toBe('least-connections');
    expect(suggest('rand', ['round-robin', 'random-two'])).toBe('random-two');
    // Two candidates start with it: no guess.
    expect(suggest('least', ['least-connections', 'least-time'])).toBeUndefined();
    // Too short to be an abbreviation.
    expect(suggest('ro', ['round-robin-long-name'])).toBeUndefined();
  });

  it('never suggests the word itself', () => {
    expect(suggest('catalog', ['catalog'])).toBeUndefined();
  });

  it('allows more edits for longer words (a third of the length)', () => {
    expect(suggest('requesthedaers', ['requestHeaders'])).toBe('requestHeaders');
  });
});

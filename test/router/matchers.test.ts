import { describe, expect, test } from 'vitest';
import { compileValueMatcher, type ValueMatcher } from '../../src/router/matchers.ts';

const compile = (spec: string): ValueMatcher => {
  const r = compileValueMatcher(spec);
  if (!r.ok) throw new Error(r.reason);
  return r.test;
};

describe('compileValueMatcher', () => {
  test('a plain value matches only that exact value', () => {
    const m = compile('mobile');
    expect([m('mobile'), m('Mobile'), m('mobile '), m('xmobile'), m(undefined)]).toEqual([true, false, false, false, false]);
  });

  test('a value starting with "~" is a regex searched anywhere in the value', () => {
    const m = compile('~iphone');
    expect([m('Mozilla (iphone; x)'), m('iPhone'), m('android'), m(undefined)]).toEqual([true, false, false, false]);
  });

  test('a leading "(?i)" makes the regex case-insensitive', () => {
    const m = compile('~(?i)iphone');
    expect([m('Mozilla (iPhone)'), m('IPHONE'), m('android')]).toEqual([true, true, false]);
  });

  test('anchors are honoured', () => {
    const m = compile('~^v[0-9]+$');
    expect([m('v12'), m('xv12'), m('v12x')]).toEqual([true, false, false]);
  });

  test('a regex keeps no state between calls', () => {
    const m = compile('~a');
    expect([m('a'), m('a'), m('a')]).toEqual([true, true, true]);
  });

  test('an empty value matches only the empty string; "~" alone matches any present value', () => {
    expect([compile('')(''), compile('')('x')]).toEqual([true, false]);
    expect([compile('~')(''), compile('~')('x'), compile('~')(undefined)]).toEqual([true, true, false]);
  });

  test('an invalid regex is refused with the reason', () => {
    const r = compileValueMatcher('~(');
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason).toMatch(/^invalid regular expression/);
  });
});

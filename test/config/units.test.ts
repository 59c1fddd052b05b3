import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { duration, parseDuration, parseSize, size } from '../../src/config/units.ts';

describe('parseDuration', () => {
  it('reads milliseconds, seconds, minutes and hours', () => {
    expect(parseDuration('250ms')).toBe(250);
    expect(parseDuration('5s')).toBe(5000);
    expect(parseDuration('1m')).toBe(60_000);
    expect(parseDuration('1h')).toBe(3_600_000);
    expect(parseDuration('0s')).toBe(0);
  });

  it('reads decimals and Go-style compounds', () => {
    expect(parseDuration('1.5s')).toBe(1500);
    expect(parseDuration('0.25m')).toBe(15_000);
    expect(parseDuration('1m30s')).toBe(90_000);
    expect(parseDuration('1h2m3s4ms')).toBe(3_723_004);
  });

  it('rejects bare numbers, spaces, unknown units, signs and empty text', () => {
    for (const bad of ['5', '5 s', '5 seconds', '5d', '-5s', '', 's', '1.s', '.5s', '5S', '1m 30s', '5s ']) {
      expect(parseDuration(bad), bad).toBeUndefined();
    }
  });
});

describe('parseSize', () => {
  it('reads bytes, kilobytes, megabytes and gigabytes as powers of 1024', () => {
    expect(parseSize('512b')).toBe(512);
    expect(parseSize('64kb')).toBe(65_536);
    expect(parseSize('10mb')).toBe(10_485_760);
    expect(parseSize('1gb')).toBe(1_073_741_824);
  });

  it('ignores case and takes decimals', () => {
    expect(parseSize('64KB')).toBe(65_536);
    expect(parseSize('1.5Mb')).toBe(1_572_864);
  });

  it('rejects bare numbers, spaces and unknown units', () => {
    for (const bad of ['512', '64 kb', '1tb', '1k', 'mb', '-1mb', '']) expect(parseSize(bad), bad).toBeUndefined();
  });
});

describe('the duration() and size() schemas', () => {
  it('turn literals into numbers', () => {
    expect(duration().parse('1m30s')).toBe(90_000);
    expect(size().parse('16kb')).toBe(16_384);
  });

  it('explain what they expected and what they got', () => {
    const d = duration().safeParse('5 seconds');
    expect(d.success).toBe(false);
    expect(d.error?.issues[0].message).toBe('expected a duration such as 250ms, 5s, 1m or 1h, got "5 seconds"');
    const n = duration().safeParse(5);
    expect(n.error?.issues[0].message).toBe('expected a duration such as 250ms, 5s, 1m or 1h, got 5');
    const s = z.object({ limit: size() }).safeParse({ limit: '10 megs' });
    expect(s.error?.issues[0].message).toBe('expected a size such as 512b, 64kb, 10mb or 1gb, got "10 megs"');
  });
});

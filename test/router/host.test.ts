import { describe, expect, test } from 'vitest';
import { normalizeHost } from '../../src/router/host.ts';

describe('normalizeHost', () => {
  test.each([
    ['shop.example.com', 'shop.example.com'],
    ['Shop.Example.COM', 'shop.example.com'],
    ['shop.example.com:8080', 'shop.example.com'],
    ['Shop.Example.com:8080', 'shop.example.com'],
    ['shop.example.com.', 'shop.example.com'],
    ['shop.example.com.:443', 'shop.example.com'],
    ['shop.example.com:', 'shop.example.com'],
    ['localhost', 'localhost'],
    ['10.0.0.1:80', '10.0.0.1'],
    ['[::1]', '[::1]'],
    ['[::1]:80', '[::1]'],
    ['[2001:DB8::1]:8443', '[2001:db8::1]'],
    ['my_service.internal', 'my_service.internal'],
  ])('turns %j into %j', (input, expected) => {
    expect(normalizeHost(input)).toBe(expected);
  });

  test.each([
    [undefined],
    [''],
    ['shop example.com'],
    [' shop.example.com'],
    ['user@shop.example.com'],
    ['evil.com@shop.example.com'],
    ['shop.example.com:99999'],
    ['shop.example.com:80a'],
    ['shop.example.com:-1'],
    ['shop.example.com:80:80'],
    [':8080'],
    ['::1'],
    ['[::1'],
    ['[::1]x'],
    ['[::1]:abc'],
    ['[zz::1]'],
    ['a..b'],
    ['.example.com'],
    ['.'],
    ['example.com..'],
    ['shop.example.com/path'],
    ['café.example.com'],
    ['a'.repeat(254)],
  ])('refuses %j', (input) => {
    expect(normalizeHost(input)).toBeUndefined();
  });

  test('accepts a 253-character name, the DNS limit', () => {
    const name = ('a'.repeat(63) + '.').repeat(3) + 'a'.repeat(61);
    expect(name.length).toBe(253);
    expect(normalizeHost(name)).toBe(name);
  });

  test('is idempotent on its own output', () => {
    for (const h of ['Shop.Example.com:8080', '[::1]:80', 'x.y.']) {
      const once = normalizeHost(h);
      expect(normalizeHost(once)).toBe(once);
    }
  });
});

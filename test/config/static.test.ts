import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { formatConfigError, loadStaticConfig, parseStaticText } from '../../src/config/load.ts';
import type { LoadResult } from '../../src/config/load.ts';
import { defaultStaticConfig } from '../../src/config/schema.ts';
import type { StaticConfig } from '../../src/config/schema.ts';

const DEFAULTS: StaticConfig = {
  listeners: {
    http: { address: { host: '0.0.0.0', port: 8080 }, redirectToHttps: false, proxyProtocol: false },
    https: { address: { host: '0.0.0.0', port: 8443 }, minTlsVersion: 'TLSv1.2', hsts: false, proxyProtocol: false },
    tcp: {},
    udp: {},
  },
  admin: { address: { host: '127.0.0.1', port: 9901 } },
  routesDir: 'routes',
  certsDir: 'certs',
  workers: 1,
  trustedProxies: [],
  timeouts: { clientHeader: 10_000, clientIdle: 60_000, shutdown: 30_000 },
  limits: { maxBodySize: 10_485_760, maxHeaderSize: 16_384, retryBuffer: 65_536, maxConnections: 10_000 },
  log: { level: 'info', access: true },
  security: { ambiguousPaths: 'reject' },
};

function ok(r: LoadResult<StaticConfig>): StaticConfig {
  if (!r.ok) throw new Error(r.errors.map(formatConfigError).join('\n'));
  return r.value;
}

function errorsOf(r: LoadResult<StaticConfig>): string[] {
  if (r.ok) throw new Error('expected errors, got a valid config');
  return r.errors.map(formatConfigError);
}

describe('waygate.yaml', () => {
  let dir = '';
  afterEach(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
    dir = '';
  });

  it('defaults to the SPEC §1 listeners and §5 settings', async () => {
    expect(defaultStaticConfig()).toEqual(DEFAULTS);
    expect(ok(await loadStaticConfig(undefined, {}))).toEqual(DEFAULTS);
    expect(ok(parseStaticText('# all defaults\n', 'waygate.yaml', {}))).toEqual(DEFAULTS);
  });

  it('gives a fresh copy each time, so callers may adjust it', () => {
    const a = defaultStaticConfig();
    a.trustedProxies.push('10.0.0.0/8');
    expect(defaultStaticConfig().trustedProxies).toEqual([]);
  });

  it('reads a full file from disk, turning addresses, durations and sizes into values', async () => {
    dir = await mkdtemp(join(tmpdir(), 'waygate-static-'));
    const file = join(dir, 'waygate.yaml');
    await writeFile(
      file,
      [
        'listeners:',
        '  http:  { address: off, redirectToHttps: true, proxyProtocol: true }',
        '  https: { address: "[::1]:0", minTlsVersion: TLSv1.3, hsts: true, proxyProtocol: true }',
        'admin: { address: 9902 }',
        'routesDir: /etc/waygate/routes',
        'certsDir: /etc/waygate/certs',
        'workers: auto',
        'trustedProxies: [10.0.0.0/8, 192.168.1.7, "fd00::/8", "::1"]',
        'secret: ${SECRET}',
        'timeouts: { clientHeader: 5s, clientIdle: 2m, shutdown: 1m30s }',
        'limits: { maxBodySize: 1gb, maxHeaderSize: 8kb, retryBuffer: 512b, maxConnections: 50 }',
        'log: { level: debug, access: false }',
        'security: { ambiguousPaths: forward }',
      ].join('\n'),
    );
    expect(ok(await loadStaticConfig(file, { SECRET: 's3cr3t' }))).toEqual({
      listeners: {
        http: { address: null, redirectToHttps: true, proxyProtocol: true },
        https: { address: { host: '::1', port: 0 }, minTlsVersion: 'TLSv1.3', hsts: true, proxyProtocol: true },
        tcp: {},
        udp: {},
      },
      admin: { address: { host: '0.0.0.0', port: 9902 } },
      routesDir: '/etc/waygate/routes',
      certsDir: '/etc/waygate/certs',
      workers: 'auto',
      trustedProxies: ['10.0.0.0/8', '192.168.1.7/32', 'fd00::/8', '::1/128'],
      secret: 's3cr3t',
      timeouts: { clientHeader: 5000, clientIdle: 120_000, shutdown: 90_000 },
      limits: { maxBodySize: 1_073_741_824, maxHeaderSize: 8192, retryBuffer: 512, maxConnections: 50 },
      log: { level: 'debug', access: false },
      security: { ambiguousPaths: 'forward' },
    } satisfies StaticConfig);
  });

  it('fills the keys a partial section leaves out', () => {
    const c = ok(parseStaticText('listeners:\n  https: { hsts: true }\nlimits: { maxBodySize: 1mb }\n', 'waygate.yaml', {}));
    expect(c.listeners.https).toEqual({ address: { host: '0.0.0.0', port: 8443 }, minTlsVersion: 'TLSv1.2', hsts: true, proxyProtocol: false });
    expect(c.listeners.http).toEqual(DEFAULTS.listeners.http);
    expect(c.limits).toEqual({ ...DEFAULTS.limits, maxBodySize: 1_048_576 });
  });

  it('coerces a substituted worker count into a number', () => {
    expect(ok(parseStaticText('workers: ${WORKERS}\n', 'waygate.yaml', { WORKERS: '4' })).workers).toBe(4);
  });

  it('refuses an unknown key with a suggestion', () => {
    expect(errorsOf(parseStaticText('admin: { address: ":9901" }\nlistener:\n  http: { address: ":80" }\n', 'waygate.yaml', {}))).toEqual([
      'waygate.yaml:2:1 listener: unknown key "listener" (did you mean "listeners"?)',
    ]);
  });

  it('reports every bad value with its position', () => {
    const text = [
      'listeners:',
      '  http: { address: "localhost:99999" }',
      '  https: { minTlsVersion: TLSv1.1 }',
      'workers: 0',
      'trustedProxies: [10.0.0.0/33, not-an-ip]',
      'timeouts: { shutdown: forever }',
      'limits: { maxBodySize: 10 MB }',
      'log: { level: verbose }',
    ].join('\n');
    expect(errorsOf(parseStaticText(text, 'waygate.yaml', {}))).toEqual([
      'waygate.yaml:2:20 listeners.http.address: port 99999 is out of range 0-65535',
      'waygate.yaml:3:27 listeners.https.minTlsVersion: expected one of TLSv1.2, TLSv1.3, got "TLSv1.1" (did you mean "TLSv1.2"?)',
      'waygate.yaml:4:10 workers: must be at least 1',
      'waygate.yaml:5:18 trustedProxies[0]: expected an IP address or CIDR range such as 10.0.0.0/8 or fd00::/8, got "10.0.0.0/33"',
      'waygate.yaml:5:31 trustedProxies[1]: expected an IP address or CIDR range such as 10.0.0.0/8 or fd00::/8, got "not-an-ip"',
      'waygate.yaml:6:23 timeouts.shutdown: expected a duration such as 250ms, 5s, 1m or 1h, got "forever"',
      'waygate.yaml:7:24 limits.maxBodySize: expected a size such as 512b, 64kb, 10mb or 1gb, got "10 MB"',
      'waygate.yaml:8:15 log.level: expected one of trace, debug, info, warn, error, fatal, silent, got "verbose"',
    ]);
  });

  it('refuses a top level that is not a map, and a YAML syntax error', () => {
    expect(errorsOf(parseStaticText('just text\n', 'waygate.yaml', {}))).toEqual(['waygate.yaml:1:1 expected a map of settings at the top level']);
    expect(errorsOf(parseStaticText('log: { level: info\n', 'waygate.yaml', {}))[0]).toMatch(/^waygate\.yaml:2:1 YAML syntax error: /);
  });

  it('reports a config file that does not exist', async () => {
    dir = await mkdtemp(join(tmpdir(), 'waygate-static-'));
    const file = join(dir, 'missing.yaml');
    expect(errorsOf(await loadStaticConfig(file, {}))).toEqual([`${file}:1:1 config file "${file}" not found`]);
  });
});

// `waygate proxy` (issue 13): one port to one or more services with no files at all; the help
// `waygate` gives when it finds no routes directory; `waygate schema`.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { connect as tlsConnect } from 'node:tls';
import { join } from 'node:path';
import { expect, test } from 'vitest';
import { runCli, send, startCli, startUpstream } from '../helpers.ts';
import { makeLeaf } from '../tls-helpers.ts';

/** An empty working directory: no routes/, no waygate.yaml, no certs/. */
async function emptyDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'waygate-proxy-'));
}

test('waygate proxy --from --to serves with no files, spreading requests over every --to', async () => {
  const a = await startUpstream((_req, res) => res.end('a'));
  const b = await startUpstream((_req, res) => res.end('b'));
  const cwd = await emptyDir();
  const cli = await startCli(['proxy', '--from', '127.0.0.1:0', '--to', a.url, '--to', b.url], {}, cwd);
  try {
    expect(cli.addresses.https).toBeNull();
    expect(cli.addresses.admin).toBeNull();
    const bodies = new Set<string>();
    for (let i = 0; i < 4; i++) {
      const r = await send(`http://${cli.addresses.http}/any/path?q=1`);
      expect(r.status).toBe(200);
      bodies.add(r.body);
    }
    expect(bodies).toEqual(new Set(['a', 'b']));
    expect(a.seen[0].url).toBe('/any/path?q=1');
  } finally {
    expect(await cli.stop('SIGTERM')).toBe(0);
    await a.close();
    await b.close();
    await rm(cwd, { recursive: true, force: true });
  }
});

test('waygate proxy --https serves HTTPS on --from with a generated certificate, and --health probes the target', async () => {
  const up = await startUpstream((_req, res) => res.end('up'));
  const cwd = await emptyDir();
  const cli = await startCli(['proxy', '--https', '--from', '127.0.0.1:0', '--to', up.url, '--health', '/health', '--admin', '127.0.0.1:0'], {}, cwd);
  try {
    expect(cli.addresses.http).toBeNull();
    const got = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = httpsRequest(`https://${cli.addresses.https}/x`, { rejectUnauthorized: false, servername: 'localhost' }, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode!, body }));
      });
      req.on('error', reject);
      req.end();
    });
    expect(got).toEqual({ status: 200, body: 'up' });
    // --health probes the target (its first probe runs at start), and /status reports it.
    while (!up.seen.some((x) => x.url === '/health')) await new Promise((r) => setTimeout(r, 50));
    const status = (await send(`http://${cli.addresses.admin}/status`)).body;
    expect(status).toContain('"lastCheckResult"');
  } finally {
    expect(await cli.stop('SIGTERM')).toBe(0);
    await up.close();
    await rm(cwd, { recursive: true, force: true });
  }
});

/** The DNS names of the certificate the listener at `addr` shows for `servername`. */
function servedNames(addr: string, servername: string): Promise<string> {
  const [host, port] = [addr.slice(0, addr.lastIndexOf(':')), Number(addr.slice(addr.lastIndexOf(':') + 1))];
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host, port, servername, rejectUnauthorized: false }, () => {
      resolve(s.getPeerCertificate().subjectaltname ?? '');
      s.end();
    });
    s.on('error', reject);
  });
}

test('waygate proxy --https serves ./certs, and SIGHUP loads a certificate added there since', async () => {
  const up = await startUpstream((_req, res) => res.end('up'));
  const cwd = await emptyDir();
  await mkdir(join(cwd, 'certs'));
  const a = await makeLeaf(['a.test']);
  await writeFile(join(cwd, 'certs', 'a.crt'), a.cert);
  await writeFile(join(cwd, 'certs', 'a.key'), a.key);
  const cli = await startCli(['proxy', '--https', '--from', '127.0.0.1:0', '--to', up.url], {}, cwd);
  try {
    const https = cli.addresses.https!;
    expect(await servedNames(https, 'a.test')).toBe('DNS:a.test');
    // Not there yet: the default (the only) certificate answers.
    expect(await servedNames(https, 'b.test')).toBe('DNS:a.test');
    const b = await makeLeaf(['b.test']);
    await writeFile(join(cwd, 'certs', 'b.crt'), b.cert);
    await writeFile(join(cwd, 'certs', 'b.key'), b.key);
    cli.proc.kill('SIGHUP');
    await cli.waitForLine((l) => l.msg === 'certificates loaded' && JSON.stringify(l.certificates).includes('b.test'));
    expect(await servedNames(https, 'b.test')).toBe('DNS:b.test');
    expect(await servedNames(https, 'a.test')).toBe('DNS:a.test');
  } finally {
    expect(await cli.stop('SIGTERM')).toBe(0);
    await up.close();
    await rm(cwd, { recursive: true, force: true });
  }
});

test('waygate proxy names the flag of a bad value, with a suggestion for a misspelt policy', async () => {
  const r = await runCli(['proxy', '--from', '127.0.0.1:0', '--to', 'http://127.0.0.1:1', '--balance', 'least-conn', '--health', 'health']);
  expect(r.code).toBe(2);
  expect(r.stderr).toContain('waygate proxy: --balance: expected one of round-robin, least-connections');
  expect(r.stderr).toContain('(did you mean "least-connections"?)');
  expect(r.stderr).toContain('waygate proxy: --health: a health check path must start with "/"');
  const none = await runCli(['proxy']);
  expect(none.code).toBe(2);
  expect(none.stderr).toContain('--to: give at least one target');
  const notUrl = await runCli(['proxy', '--to', '127.0.0.1:3000']);
  expect(notUrl.stderr).toContain('--to: expected an http:// or https:// URL, got "127.0.0.1:3000"');
  const help = await runCli(['proxy', '--help']);
  expect(help.code).toBe(0);
  expect(help.stdout).toContain('usage: waygate proxy --to URL');
});

test('waygate with no routes directory says where it looked and shows the one-liner and a first routes file', async () => {
  const cwd = await emptyDir();
  try {
    const r = await runCli([], {}, cwd);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`routes directory "routes" not found (the default; looked in ${cwd})`);
    expect(r.stderr).toContain('waygate proxy --from :8080 --to http://127.0.0.1:3000');
    expect(r.stderr).toContain('routes/app.yaml');
    // --check keeps its one-line verdict.
    const check = await runCli(['--check'], {}, cwd);
    expect(check.code).toBe(1);
    expect(check.stdout).toContain('routes directory "routes" not found');
    expect(check.stdout).not.toContain('waygate proxy');
  } finally {
    await rm(cwd, { recursive: true, force: true });
  }
});

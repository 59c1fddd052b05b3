// Debian packages the tests run for real (SPEC: "Where a feature talks to a real system, the
// tests run the real one"): installed here once per machine, before any test file starts, so a
// fresh clone's `npm test` needs nothing installed by hand. Quiet unless something is missing.
import { spawnSync } from 'node:child_process';

/** Binary → the Debian package that provides it. */
const PACKAGES: Record<string, string> = {
  'redis-server': 'redis-server',
  nginx: 'nginx-light',
  htpasswd: 'apache2-utils',
};

const has = (bin: string): boolean => spawnSync('sh', ['-c', `command -v ${bin}`], { stdio: 'ignore' }).status === 0;

export default function setup(): void {
  const missing = Object.entries(PACKAGES).filter(([bin]) => !has(bin)).map(([, pkg]) => pkg);
  if (missing.length === 0) return;
  const root = process.getuid?.() === 0 ? [] : ['sudo', '-n'];
  const run = (args: string[]): boolean => {
    const cmd = [...root, ...args];
    const r = spawnSync(cmd[0], cmd.slice(1), { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }, timeout: 300_000 });
    if (r.status !== 0) process.stderr.write(`test setup: ${cmd.join(' ')} failed: ${r.stderr?.toString().trim().split('\n').slice(-3).join(' | ')}\n`);
    return r.status === 0;
  };
  process.stderr.write(`test setup: installing ${missing.join(', ')} (apt-get)\n`);
  // The tests that need them fail with a clear message if this does not work.
  if (!run(['apt-get', 'install', '-y', '-qq', ...missing])) {
    run(['apt-get', 'update', '-qq']);
    run(['apt-get', 'install', '-y', '-qq', ...missing]);
  }
}

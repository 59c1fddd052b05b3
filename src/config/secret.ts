// The secret that signs sticky-session tokens (SPEC §4): WAYGATE_SECRET, else `secret` in
// waygate.yaml, else one generated once into certs/.waygate-secret and reused on every start.
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/** File name of the generated secret inside the certificates directory. */
export const SECRET_FILE = '.waygate-secret';

/** Where the secret came from, and the secret. */
export interface ResolvedSecret {
  secret: string;
  source: 'WAYGATE_SECRET' | 'waygate.yaml' | 'file' | 'generated';
  file?: string;
}

/**
 * Returns the sticky secret. Generating writes 32 random bytes (hex) with mode 0600 and never
 * overwrites an existing file (a concurrent start that lost the race reads the winner's).
 */
export async function resolveSecret(env: NodeJS.ProcessEnv, configured: string | undefined, certsDir: string): Promise<ResolvedSecret> {
  const fromEnv = env.WAYGATE_SECRET;
  if (fromEnv !== undefined && fromEnv !== '') return { secret: fromEnv, source: 'WAYGATE_SECRET' };
  if (configured !== undefined) return { secret: configured, source: 'waygate.yaml' };
  const file = join(certsDir, SECRET_FILE);
  const existing = await readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw new Error(`cannot read the sticky-session secret ${file}: ${err.message}`);
  });
  if (existing !== undefined && existing.trim() !== '') return { secret: existing.trim(), source: 'file', file };
  await mkdir(certsDir, { recursive: true });
  const secret = randomBytes(32).toString('hex');
  try {
    await writeFile(file, secret + '\n', { mode: 0o600, flag: 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return { secret: (await readFile(file, 'utf8')).trim(), source: 'file', file };
    throw new Error(`cannot write the sticky-session secret ${file}: ${(err as Error).message}`);
  }
  return { secret, source: 'generated', file };
}

// The HTTPS listener's certificates as a running gateway holds them: the first-run self-signed
// pair, loading certsDir into the store (each bad file logged and skipped), reloads (file change,
// SIGHUP, POST /reload) and the watch on the directory.
import type { Logger } from '../observe/logger.ts';
import { CertStore, ensureSelfSigned, loadCertsDir, watchCertsDir } from '../server/tls/index.ts';
import type { TlsPolicy } from '../server/tls/index.ts';

/**
 * Generates the self-signed certificate for localhost when `dir` holds none, and says so in the
 * log. The cluster primary calls it before forking, so no two workers generate side by side.
 */
export async function ensureCertificates(dir: string, log: Logger): Promise<void> {
  const generated = await ensureSelfSigned(dir);
  if (generated.length > 0) log.warn({ files: generated }, `no certificate in ${dir}: generated a self-signed certificate for localhost; put real certificates there`);
}

/** The certificates in force on the HTTPS listener, and how they are (re)loaded. */
export class GatewayCerts {
  readonly store = new CertStore();
  readonly policy: TlsPolicy;
  readonly #dir: string;
  readonly #log: Logger;
  #reloading: Promise<string[]> | undefined;
  #watch: { close(): void } | undefined;

  constructor(dir: string, policy: TlsPolicy, log: Logger) {
    this.#dir = dir;
    this.policy = policy;
    this.#log = log;
  }

  /**
   * Before the HTTPS listener starts: the self-signed pair if the directory has no certificate,
   * then a load; rejects when no usable certificate came of it.
   */
  async first(): Promise<void> {
    await ensureCertificates(this.#dir, this.#log);
    const problems = await this.#load();
    if (this.store.size === 0) throw new Error(`cannot start the HTTPS listener: ${problems.join('; ')}`);
  }

  /**
   * Loads certsDir into the store: each bad file is logged by name and skipped; with no usable
   * certificate at all the certificates in force are kept. Returns the problems, one line each.
   */
  async #load(): Promise<string[]> {
    const dir = this.#dir;
    const r = await loadCertsDir(dir, this.policy);
    const problems = r.errors.map((e) => `${e.file}: ${e.message}`);
    for (const e of r.errors) this.#log.error({ file: e.file, err: e.message }, 'certificate not loaded');
    for (const w of r.warnings) this.#log.warn({ file: w.file, warning: w.message }, 'certificate warning');
    if (r.certs.length === 0) {
      problems.push(`${dir}: no usable certificate`);
      return problems;
    }
    this.store.install(r);
    this.#log.info({ certificates: r.certs.map((c) => ({ file: c.file, names: c.names, notAfter: c.notAfter })), default: this.store.defaultCert?.file }, 'certificates loaded');
    return problems;
  }

  /** Reloads the certificates; concurrent calls share one load. */
  reload(): Promise<string[]> {
    this.#reloading ??= this.#load().finally(() => {
      this.#reloading = undefined;
    });
    return this.#reloading;
  }

  /** Reloads on every change in certsDir from now on. */
  watch(): void {
    this.#watch = watchCertsDir(this.#dir, () => void this.reload());
  }

  /** Stops the watch. */
  close(): void {
    this.#watch?.close();
  }
}

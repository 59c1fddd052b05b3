// The certificates in force and the SNI lookup. `install` replaces one immutable snapshot with
// another in a single assignment: a handshake reads the snapshot once, so it is never served from
// a half-installed set, and connections already established keep the context they negotiated.
import type { SecureContext, SecureContextOptions } from 'node:tls';
import type { CertLoadResult, LoadedCert } from './load.ts';
import { normaliseName } from './pem.ts';
import { secureOptions } from './policy.ts';
import type { TlsPolicy } from './policy.ts';

interface Snapshot {
  certs: readonly LoadedCert[];
  exact: ReadonlyMap<string, LoadedCert>;
  /** "*.example.com" is stored under "example.com". */
  wildcard: ReadonlyMap<string, LoadedCert>;
  defaultCert: LoadedCert | undefined;
}

const EMPTY: Snapshot = { certs: [], exact: new Map(), wildcard: new Map(), defaultCert: undefined };

/** A server whose own (no-SNI) context can be replaced: tls.Server, https.Server, http2 secure server. */
export interface SecureContextTarget {
  setSecureContext(options: SecureContextOptions): void;
}

function snapshot(r: CertLoadResult): Snapshot {
  const exact = new Map<string, LoadedCert>();
  const wildcard = new Map<string, LoadedCert>();
  // Certificates come in name order; the first one to claim a name keeps it (loadCertsDir warns).
  for (const cert of r.certs) {
    for (const name of cert.names) {
      if (name.startsWith('*.')) {
        const parent = name.slice(2);
        if (!wildcard.has(parent)) wildcard.set(parent, cert);
      } else if (!name.includes('*') && !exact.has(name)) {
        // Partial-label wildcards ("w*.example.com") are not matched: RFC 6125 §6.4.3 lets a client refuse them anyway.
        exact.set(name, cert);
      }
    }
  }
  return { certs: [...r.certs], exact, wildcard, defaultCert: r.defaultCert ?? r.certs[0] };
}

/** The certificates in force; `install` swaps them atomically (in-flight handshakes keep what they got). */
export class CertStore {
  #snap: Snapshot = EMPTY;
  #attached = new Map<SecureContextTarget, TlsPolicy>();

  /** Makes `r`'s certificates the ones served from now on; returns nothing. */
  install(r: CertLoadResult): void {
    this.#snap = snapshot(r);
    for (const [server, policy] of this.#attached) this.#applyDefault(server, policy);
  }

  /** How many certificates are installed (0 before the first install). */
  get size(): number {
    return this.#snap.certs.length;
  }

  /** The certificate for clients sending no or an unknown SNI; undefined when the store is empty. */
  get defaultCert(): LoadedCert | undefined {
    return this.#snap.defaultCert;
  }

  /** The installed certificates in name order; [] when empty. */
  get certs(): readonly LoadedCert[] {
    return this.#snap.certs;
  }

  /** The certificate a server name selects: exact SAN, then a one-label wildcard ("*.example.com" matches "a.example.com" only), then the default. undefined only when the store is empty. */
  certFor(name: string | undefined): LoadedCert | undefined {
    const snap = this.#snap;
    if (name) {
      const n = normaliseName(name);
      const hit = snap.exact.get(n);
      if (hit) return hit;
      // A wildcard covers exactly one label (RFC 6125 §6.4.3): strip the first label only.
      const dot = n.indexOf('.');
      if (dot > 0) {
        const wild = snap.wildcard.get(n.slice(dot + 1));
        if (wild) return wild;
      }
    }
    return snap.defaultCert;
  }

  /** For tls.createServer/http2.createSecureServer: SNICallback. */
  readonly sniCallback = (servername: string, cb: (err: Error | null, ctx?: SecureContext) => void): void => {
    const cert = this.certFor(servername);
    if (cert) cb(null, cert.context);
    else cb(new Error('no TLS certificate is loaded'));
  };

  /**
   * Keeps `server`'s own context on the default certificate now and after every install. Node
   * calls SNICallback only when the client sends a server name; without one the handshake uses
   * the server's own context, so that must be the default certificate. Returns a detach function.
   */
  attach(server: SecureContextTarget, policy: TlsPolicy): () => void {
    this.#attached.set(server, policy);
    this.#applyDefault(server, policy);
    return () => {
      this.#attached.delete(server);
    };
  }

  #applyDefault(server: SecureContextTarget, policy: TlsPolicy): void {
    const d = this.#snap.defaultCert;
    // An empty store leaves the server as it was: Node cannot unset a context, and SNI clients are refused by sniCallback.
    if (d) server.setSecureContext({ ...secureOptions(policy), cert: d.pem.cert, key: d.pem.key });
  }
}

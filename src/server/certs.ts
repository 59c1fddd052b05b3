// Certificate handling of the HTTPS listener (SPEC §1–§2): the TLS policy, loading the certs
// directory, SNI selection, the first-run self-signed certificate and watching for renewals.
// One entry point; each concern lives in its own cert-*.ts file.
export { TLS_CIPHERS, TLS_CURVES, secureOptions } from './cert-policy.ts';
export type { SecureOptions, TlsPolicy } from './cert-policy.ts';
export { EXPIRY_WARNING_DAYS, loadCertsDir } from './cert-load.ts';
export type { CertLoadResult, CertProblem, LoadedCert } from './cert-load.ts';
export { CertStore } from './cert-store.ts';
export type { SecureContextTarget } from './cert-store.ts';
export { SELF_SIGNED_DAYS, ensureSelfSigned } from './cert-selfsigned.ts';
export { DEFAULT_CERT_DEBOUNCE_MS, DEFAULT_CERT_POLL_MS, watchCertsDir } from './cert-watch.ts';
export type { WatchCertsOptions } from './cert-watch.ts';

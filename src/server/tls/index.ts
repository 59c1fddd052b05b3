// Certificate handling of the HTTPS listener (SPEC §1–§2): the TLS policy, loading the certs
// directory, SNI selection, the first-run self-signed certificate and watching for renewals.
// One entry point; each concern lives in its own file of this directory.
export { TLS_CIPHERS, TLS_CURVES, secureOptions } from './policy.ts';
export type { SecureOptions, TlsPolicy } from './policy.ts';
export { EXPIRY_WARNING_DAYS, loadCertsDir } from './load.ts';
export type { CertLoadResult, CertProblem, LoadedCert } from './load.ts';
export { CertStore } from './store.ts';
export type { SecureContextTarget } from './store.ts';
export { SELF_SIGNED_DAYS, ensureSelfSigned } from './self-signed.ts';
export { DEFAULT_CERT_DEBOUNCE_MS, DEFAULT_CERT_POLL_MS, watchCertsDir } from './watch.ts';
export type { WatchCertsOptions } from './watch.ts';

// TLS policy of the HTTPS listener: protocol floor, cipher list and curves, applied both to the
// server's own options and to every per-certificate context.
//
// Why both: when the SNI callback swaps in another SecureContext, OpenSSL (SSL_set_SSL_CTX) takes
// the certificate and key from it but keeps the protocol versions and cipher list the connection
// started with, i.e. the server's. Only settings on the server itself are really enforced.
import type { SecureVersion } from 'node:tls';

/** TLS 1.3 suites, listed explicitly so the string is complete on its own: Node's defaults, in Node's order. */
const TLS13_SUITES = ['TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256', 'TLS_AES_128_GCM_SHA256'];

/**
 * Mozilla "intermediate" TLS 1.2 suites, ECDHE only: forward secrecy and AEAD (AES-GCM,
 * ChaCha20-Poly1305), no CBC (Lucky13-style padding oracles), no static RSA key exchange.
 * https://ssl-config.mozilla.org/guidelines/5.7.json
 */
const TLS12_SUITES = [
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
];

/** Mozilla "intermediate" TLS 1.2 cipher list (ECDHE + AES-GCM/CHACHA20, no CBC), TLS 1.3 suites are Node's defaults. */
export const TLS_CIPHERS: string = [...TLS13_SUITES, ...TLS12_SUITES].join(':');

/** X25519:prime256v1:secp384r1 */
export const TLS_CURVES: string = 'X25519:prime256v1:secp384r1';

/** The lowest TLS version the HTTPS listener accepts (waygate.yaml `listeners.https.minTlsVersion`). */
export interface TlsPolicy {
  minVersion: 'TLSv1.2' | 'TLSv1.3';
}

/** The options secureOptions() returns (a type alias, so it is assignable to Record<string, unknown>). */
export type SecureOptions = {
  minVersion: SecureVersion;
  ciphers: string;
  ecdhCurve: string;
  honorCipherOrder: true;
};

/** Options to spread into tls/https/http2 createSecureServer and createSecureContext: minVersion, ciphers, ecdhCurve, honorCipherOrder. */
export function secureOptions(policy: TlsPolicy): SecureOptions {
  // honorCipherOrder: the list is ordered by preference (AES-128-GCM first, ChaCha20 for clients
  // without AES hardware still offered), so the server's order should decide, not the client's.
  return { minVersion: policy.minVersion, ciphers: TLS_CIPHERS, ecdhCurve: TLS_CURVES, honorCipherOrder: true };
}

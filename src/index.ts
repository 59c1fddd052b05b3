// The library entry point: start a gateway from code instead of the CLI.
export { Gateway } from './gateway/gateway.ts';
export { buildRuntime, trustPredicate } from './runtime.ts';
export type { BoundAddresses, GatewayOptions, ReloadResult } from './gateway/gateway.ts';
export { loadRoutesDir, loadStaticConfig, parseRoutesText, formatConfigError } from './config/load.ts';
export type { ConfigError, LoadResult, RoutesConfig } from './config/load.ts';
export { defaultStaticConfig } from './config/schema.ts';
export type { StaticConfig, PoolConfig, RouteConfig } from './config/schema.ts';
export { createLoggers } from './observe/logger.ts';
export { GatewayError } from './errors.ts';

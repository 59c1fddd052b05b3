// Loading config files: the routes directory (merged across files, with cross-file checks) and
// waygate.yaml. All errors are collected, located at file:line:col and sorted; nothing here
// throws for bad input, and the output is plain data the runtime trusts.
import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, extname, join } from 'node:path';
import { formatKeyPath, sortErrors } from './config-error.ts';
import type { ConfigError } from './config-error.ts';
import { didYouMean, validate } from './issues.ts';
import { routesFileSchema, staticConfigSchema } from './schema.ts';
import type { MiddlewareConfig, PoolConfig, PoolKind, RouteConfig, RouteTestConfig, StaticConfig, TcpRouteConfig, UdpRouteConfig } from './schema.ts';
import { HTTPS_LISTENER } from './l4-schema.ts';
import { locate, parseYamlSource } from './yaml-source.ts';
import type { YamlSource } from './yaml-source.ts';

export { formatConfigError } from './config-error.ts';
export type { ConfigError } from './config-error.ts';

/** The outcome of loading: the value plus warnings, or every error found. */
export type LoadResult<T> = { ok: true; value: T; warnings: string[] } | { ok: false; errors: ConfigError[] };

/** Where a pool, route or test was defined: file, 1-based position, file order and position in its list. */
export interface SourceRef {
  file: string;
  line: number;
  col: number;
  fileIndex: number;
  index: number;
}

/** All routes files merged: names are global, routes in file-name order then position. */
export interface RoutesConfig {
  files: string[];
  pools: Map<string, PoolConfig & { source: SourceRef }>;
  /** SPEC §8: named middlewares, global across files. */
  middlewares: Map<string, MiddlewareConfig & { source: SourceRef }>;
  routes: Array<RouteConfig & { name: string; source: SourceRef }>;
  /** SPEC §7; `listenerAt` locates the `listener` value for the cross-check with waygate.yaml. */
  tcpRoutes: Array<TcpRouteConfig & { name: string; source: SourceRef; listenerAt: SourceRef }>;
  udpRoutes: Array<UdpRouteConfig & { name: string; source: SourceRef; listenerAt: SourceRef }>;
  /** `listenerAt`: where a connect test's `listener` is, for the cross-check with waygate.yaml. */
  tests: Array<RouteTestConfig & { source: SourceRef; listenerAt?: SourceRef }>;
}

/** One routes file's text, named as it should appear in messages ("routes/shop.yaml"). */
export interface RoutesText {
  file: string;
  text: string;
}

/** Returns the merged routes of the `*.yaml` / `*.yml` files directly in `dir`, or every error. */
export async function loadRoutesDir(dir: string, env: NodeJS.ProcessEnv = process.env): Promise<LoadResult<RoutesConfig>> {
  let names: string[];
  try {
    if (!(await stat(dir)).isDirectory()) return fileError(dir, `routes directory "${dir}" is not a directory`);
    names = await readdir(dir);
  } catch {
    return fileError(dir, `routes directory "${dir}" not found`);
  }
  // Plain code-unit order, not locale order: the same files merge the same way everywhere.
  const files = names.filter((n) => !n.startsWith('.') && /\.ya?ml$/.test(n)).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const texts: RoutesText[] = [];
  const unreadable: ConfigError[] = [];
  for (const name of files) {
    const file = join(dir, name);
    try {
      if (!(await stat(file)).isFile()) continue; // e.g. a directory named "old.yaml"
      texts.push({ file, text: await readFile(file, 'utf8') });
    } catch (err) {
      unreadable.push({ file, line: 1, col: 1, path: '', message: `cannot read routes file: ${(err as Error).message}` });
    }
  }
  const r = parseRoutesFiles(texts, env);
  if (unreadable.length > 0) return { ok: false, errors: sortErrors([...unreadable, ...(r.ok ? [] : r.errors)]) };
  if (r.ok && texts.length === 0) r.warnings.push(`routes directory "${dir}" has no *.yaml or *.yml files: no routes are served`);
  return r;
}

/** Returns the routes of one file's text, with references checked within that file alone. */
export function parseRoutesText(text: string, file: string, env: NodeJS.ProcessEnv = process.env): LoadResult<RoutesConfig> {
  return parseRoutesFiles([{ file, text }], env);
}

/** Returns the routes of several files merged in the order given, or every error across them. */
export function parseRoutesFiles(texts: readonly RoutesText[], env: NodeJS.ProcessEnv = process.env): LoadResult<RoutesConfig> {
  const errors: ConfigError[] = [];
  const warnings: string[] = [];
  const out: RoutesConfig = { files: texts.map((t) => t.file), pools: new Map(), middlewares: new Map(), routes: [], tcpRoutes: [], udpRoutes: [], tests: [] };
  const poolSources = new Map<string, SourceRef>();
  const routeSources = new Map<string, SourceRef>();
  const middlewareSources = new Map<string, SourceRef>();
  const middlewareRefs: Array<{ src: YamlSource; path: (string | number)[]; name: string }> = [];
  const references: Array<{ src: YamlSource; path: (string | number)[]; pool: string; wants: PoolKind; what?: string }> = [];
  const poolKinds = new Map<string, PoolKind>();

  texts.forEach(({ file, text }, fileIndex) => {
    const src = parseYamlSource(text, file, env);
    warnings.push(...src.warnings);
    if (src.data === undefined || src.data === null) {
      errors.push(...src.errors);
      return;
    }
    if (!isMap(src.data)) {
      const { line, col } = locate(src, []);
      errors.push(...src.errors, { file, line, col, path: '', message: 'expected a map with pools, routes and tests at the top level' });
      return;
    }
    const ref = (path: (string | number)[], index: number, at: 'key' | 'value' = 'value'): SourceRef => {
      const { line, col } = locate(src, path, at);
      return { file, line, col, fileIndex, index };
    };
    const stem = basename(file, extname(file));
    const routeName = (given: unknown, index: number) => (typeof given === 'string' ? given : `${stem}[${index}]`);

    // Names and references come from the raw data, so a file with a schema error elsewhere
    // still defines its pools for the others and has its own references checked.
    const raw = src.data;
    Object.keys(isMap(raw.pools) ? raw.pools : {}).forEach((name, index) => {
      const source = ref(['pools', name], index, 'key');
      const first = poolSources.get(name);
      if (first !== undefined) errors.push(duplicate(source, ['pools', name], `duplicate pool "${name}"`, first));
      else poolSources.set(name, source);
    });
    Object.entries(isMap(raw.middlewares) ? raw.middlewares : {}).forEach(([name, m], index) => {
      const source = ref(['middlewares', name], index, 'key');
      const first = middlewareSources.get(name);
      if (first !== undefined) errors.push(duplicate(source, ['middlewares', name], `duplicate middleware "${name}"`, first));
      else middlewareSources.set(name, source);
      // errorPages serves its page from a pool: an HTTP one, checked with the routes' references.
      const pages = isMap(m) && isMap(m.errorPages) ? m.errorPages : undefined;
      if (pages !== undefined && typeof pages.pool === 'string') references.push({ src, path: ['middlewares', name, 'errorPages', 'pool'], pool: pages.pool, wants: 'http', what: 'errorPages' });
    });
    (Array.isArray(raw.routes) ? raw.routes : []).forEach((route: unknown, index) => {
      const list = isMap(route) && Array.isArray(route.middlewares) ? route.middlewares : [];
      const seen = new Set<string>();
      list.forEach((n: unknown, i) => {
        if (typeof n !== 'string') return;
        const path = ['routes', index, 'middlewares', i];
        if (seen.has(n)) {
          const { line, col } = locate(src, path);
          errors.push({ file, line, col, path: formatKeyPath(path), message: `middleware "${n}" is listed twice: it would run twice` });
        }
        seen.add(n);
        middlewareRefs.push({ src, path, name: n });
      });
    });
    // HTTP, TCP and UDP routes share one namespace: a name is one route in /status and the metrics.
    for (const [list, wants] of [['routes', 'http'], ['tcpRoutes', 'tcp'], ['udpRoutes', 'udp']] as const) {
      const prefix = list === 'routes' ? stem : `${stem}.${list}`;
      (Array.isArray(raw[list]) ? raw[list] : []).forEach((route: unknown, index) => {
        const r = isMap(route) ? route : {};
        const name = typeof r.name === 'string' ? r.name : `${prefix}[${index}]`;
        const path = typeof r.name === 'string' ? [list, index, 'name'] : [list, index];
        const first = routeSources.get(name);
        if (first !== undefined) errors.push(duplicate({ ...ref(path, index) }, path, `duplicate route name "${name}"`, first));
        else routeSources.set(name, ref([list, index], index));
        if (typeof r.pool === 'string') references.push({ src, path: [list, index, 'pool'], pool: r.pool, wants });
        (Array.isArray(r.split) ? r.split : []).forEach((s: unknown, i) => {
          if (isMap(s) && typeof s.pool === 'string') references.push({ src, path: [list, index, 'split', i, 'pool'], pool: s.pool, wants });
        });
      });
    }

    const v = validate(routesFileSchema, src, raw);
    if (!v.ok) {
      errors.push(...v.errors);
      return;
    }
    Object.entries(v.value.middlewares).forEach(([name, m], index) => {
      if (!out.middlewares.has(name)) out.middlewares.set(name, { ...m, source: ref(['middlewares', name], index, 'key') });
    });
    Object.entries(v.value.pools).forEach(([name, pool], index) => {
      if (!out.pools.has(name)) out.pools.set(name, { ...pool, source: ref(['pools', name], index, 'key') });
      if (!poolKinds.has(name)) poolKinds.set(name, pool.kind);
    });
    v.value.routes.forEach((route, index) => {
      out.routes.push({ ...route, name: routeName(route.name, index), source: ref(['routes', index], index) });
    });
    v.value.tcpRoutes.forEach((route, index) => {
      out.tcpRoutes.push({ ...route, name: route.name ?? `${stem}.tcpRoutes[${index}]`, source: ref(['tcpRoutes', index], index), listenerAt: ref(['tcpRoutes', index, 'listener'], index) });
    });
    v.value.udpRoutes.forEach((route, index) => {
      out.udpRoutes.push({ ...route, name: route.name ?? `${stem}.udpRoutes[${index}]`, source: ref(['udpRoutes', index], index), listenerAt: ref(['udpRoutes', index, 'listener'], index) });
    });
    v.value.tests.forEach((test, index) => {
      const source = ref(['tests', index], index);
      out.tests.push(test.kind === 'connect' ? { ...test, source, listenerAt: ref(['tests', index, 'listener'], index) } : { ...test, source });
    });
  });

  // References are checked after merging: a route may use a pool defined in any file.
  for (const { src, path, name } of middlewareRefs) {
    if (middlewareSources.has(name)) continue;
    const { line, col } = locate(src, path);
    const known = [...middlewareSources.keys()];
    const has = known.length === 0 ? ' (no routes file defines middlewares:)' : '';
    errors.push({ file: src.file, line, col, path: formatKeyPath(path), message: `unknown middleware "${name}"${didYouMean(name, known)}${has}` });
  }
  for (const { src, path, pool, wants, what } of references) {
    const { line, col } = locate(src, path);
    const at = { file: src.file, line, col, path: formatKeyPath(path) };
    if (!poolSources.has(pool)) {
      const sameKind = [...poolSources.keys()].filter((p) => (poolKinds.get(p) ?? wants) === wants);
      errors.push({ ...at, message: `unknown pool "${pool}"${didYouMean(pool, sameKind)}` });
      continue;
    }
    const kind = poolKinds.get(pool);
    // An unknown kind: the pool itself has an error, reported where it is.
    if (kind === undefined || kind === wants) continue;
    const where = what !== undefined ? what : wants === 'http' ? 'an HTTP route' : `a ${wants === 'tcp' ? 'tcpRoute' : 'udpRoute'}`;
    const needs = wants === 'http' ? 'http:// or https://' : `${wants}://`;
    errors.push({ ...at, message: `${where} needs a pool of ${needs} targets; pool "${pool}" has ${kind === 'http' ? 'http(s)://' : `${kind}://`} targets` });
  }

  if (errors.length > 0) return { ok: false, errors: sortErrors(errors) };
  return { ok: true, value: out, warnings };
}

function duplicate(at: SourceRef, path: (string | number)[], what: string, first: SourceRef): ConfigError {
  const message = `${what} (first defined at ${first.file}:${first.line}:${first.col})`;
  return { file: at.file, line: at.line, col: at.col, path: formatKeyPath(path), message };
}

function isMap(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function fileError(file: string, message: string): { ok: false; errors: ConfigError[] } {
  return { ok: false, errors: [{ file, line: 1, col: 1, path: '', message }] };
}

/** Returns waygate.yaml validated with defaults filled; `undefined` gives the default configuration. */
export async function loadStaticConfig(file: string | undefined, env: NodeJS.ProcessEnv = process.env): Promise<LoadResult<StaticConfig>> {
  if (file === undefined) return parseStaticText('', 'waygate.yaml', env);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return fileError(file, code === 'ENOENT' ? `config file "${file}" not found` : `cannot read config file "${file}": ${(err as Error).message}`);
  }
  return parseStaticText(text, file, env);
}

/** Returns waygate.yaml text validated with defaults filled (an empty text gives the defaults). */
export function parseStaticText(text: string, file: string, env: NodeJS.ProcessEnv = process.env): LoadResult<StaticConfig> {
  const src = parseYamlSource(text, file, env);
  if (src.errors.length > 0 && src.data === undefined) return { ok: false, errors: sortErrors(src.errors) };
  const data = src.data ?? {};
  if (!isMap(data)) {
    const { line, col } = locate(src, []);
    return { ok: false, errors: [{ file, line, col, path: '', message: 'expected a map of settings at the top level' }] };
  }
  const r = validate(staticConfigSchema, src, data);
  if (!r.ok) return { ok: false, errors: sortErrors(r.errors) };
  return { ok: true, value: r.value, warnings: src.warnings };
}

/**
 * Checks what a routes directory says about waygate.yaml's listeners (SPEC §7): every tcpRoute
 * names a `listeners.tcp` entry or `https` (with the HTTPS listener on), every udpRoute a
 * `listeners.udp` entry, and every `connect:` test a listener of its kind. Returns the located errors.
 */
export function checkListeners(routes: RoutesConfig, config: StaticConfig): ConfigError[] {
  const errors: ConfigError[] = [];
  const tcp = Object.keys(config.listeners.tcp);
  const udp = Object.keys(config.listeners.udp);
  const httpsOn = config.listeners.https.address !== null;
  const at = (r: SourceRef, path: string, message: string): ConfigError => ({ file: r.file, line: r.line, col: r.col, path, message });
  const httpsOff = 'listener "https" is the shared HTTPS port, which is off (listeners.https.address in waygate.yaml, or --https off): no connection reaches it';
  /** Why `name` is not a listener of `kind`, with the names it could be. */
  const unknown = (kind: 'tcp' | 'udp', name: string, what: string): string => {
    const own = kind === 'tcp' ? tcp : udp;
    const other = kind === 'tcp' ? udp : tcp;
    const candidates = kind === 'tcp' && httpsOn ? [...own, HTTPS_LISTENER] : own;
    const has = own.length === 0 ? `waygate.yaml has no listeners.${kind}` : `waygate.yaml's listeners.${kind} has ${own.join(', ')}`;
    const https = kind === 'tcp' && httpsOn ? ` (or "${HTTPS_LISTENER}", the shared HTTPS port)` : '';
    if (other.includes(name)) return `"${name}" is a ${kind === 'tcp' ? 'udp' : 'tcp'} listener (listeners.${kind === 'tcp' ? 'udp' : 'tcp'}); ${what} needs one of listeners.${kind}: ${own.length === 0 ? 'there is none' : own.join(', ')}${https}`;
    return `unknown ${kind} listener "${name}"${didYouMean(name, candidates)}: ${has}${https}`;
  };
  for (const r of routes.tcpRoutes) {
    const path = `tcpRoutes[${r.source.index}].listener`;
    if (r.listener === HTTPS_LISTENER) {
      if (!httpsOn) errors.push(at(r.listenerAt, path, httpsOff));
    } else if (!tcp.includes(r.listener)) errors.push(at(r.listenerAt, path, unknown('tcp', r.listener, 'a tcpRoute')));
  }
  for (const r of routes.udpRoutes) {
    if (!udp.includes(r.listener)) errors.push(at(r.listenerAt, `udpRoutes[${r.source.index}].listener`, unknown('udp', r.listener, 'a udpRoute')));
  }
  for (const t of routes.tests) {
    if (t.kind !== 'connect') continue;
    const path = `tests[${t.source.index}].listener`;
    const where = t.listenerAt ?? t.source;
    const kind = t.connect.scheme === 'udp' ? 'udp' : 'tcp';
    if (kind === 'tcp' && t.listener === HTTPS_LISTENER) {
      if (!httpsOn) errors.push(at(where, path, httpsOff));
    } else if (!(kind === 'udp' ? udp : tcp).includes(t.listener)) {
      errors.push(at(where, path, unknown(kind, t.listener, `a ${t.connect.scheme}:// test`)));
    }
  }
  return sortErrors(errors);
}

/**
 * Checks what the middlewares need of waygate.yaml (SPEC §8): a `store: redis` rate limit needs
 * its `redis`. Returns the located errors.
 */
export function checkMiddlewares(routes: RoutesConfig, config: StaticConfig): ConfigError[] {
  const errors: ConfigError[] = [];
  for (const [name, m] of routes.middlewares) {
    if (m.kind !== 'rateLimit' || (m.options as { store?: string }).store !== 'redis' || config.redis !== undefined) continue;
    const s = m.source;
    errors.push({ file: s.file, line: s.line, col: s.col, path: `middlewares.${name}.rateLimit.store`, message: 'store: redis needs a Redis: add redis: { url: redis://host:6379 } to waygate.yaml (or use store: local)' });
  }
  return sortErrors(errors);
}

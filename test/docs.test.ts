// The documentation's examples must stay valid: every ```yaml block in README.md and docs/**/*.md
// passes the same checks as --check (a routes file with its tests:, or a waygate.yaml), every
// routes directory shipped in the repository does too, and every relative link in the README and
// docs/ points at a file (and, for a #fragment into Markdown, a heading) that exists.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { expect, test } from 'vitest';
import { checkMiddlewares, loadRoutesDir, loadStaticConfig, parseRoutesText, parseStaticText } from '../src/config/load.ts';
import { defaultStaticConfig } from '../src/config/schema.ts';
import { runRouteTests } from '../src/route/tests.ts';

const root = new URL('..', import.meta.url).pathname;

/** README.md and every Markdown file under docs/, as paths relative to the repository root. */
function docFiles(): string[] {
  const out = ['README.md'];
  const walk = (dir: string): void => {
    for (const name of readdirSync(join(root, dir)).sort()) {
      const rel = join(dir, name);
      if (statSync(join(root, rel)).isDirectory()) walk(rel);
      else if (name.endsWith('.md')) out.push(rel);
    }
  };
  if (existsSync(join(root, 'docs'))) walk('docs');
  return out;
}

interface YamlBlock {
  file: string;
  /** 1-based line of the block's first YAML line. */
  line: number;
  text: string;
}

/** Every fenced ```yaml block of a Markdown text. */
function yamlBlocks(file: string, md: string): YamlBlock[] {
  const blocks: YamlBlock[] = [];
  const lines = md.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)(`{3,}|~{3,})\s*(\S*)/.exec(lines[i]);
    if (open === null) continue;
    const fence = open[2];
    let end = i + 1;
    while (end < lines.length && !lines[end].trimStart().startsWith(fence)) end++;
    if (open[3] === 'yaml' || open[3] === 'yml') blocks.push({ file, line: i + 2, text: lines.slice(i + 1, end).join('\n') });
    i = end;
  }
  return blocks;
}

const ROUTES_KEYS = new Set(['pools', 'routes', 'tcpRoutes', 'udpRoutes', 'tests']);

/**
 * A block is a routes file when it has a routes-file key (pools, routes, tests) or nothing at all,
 * and a waygate.yaml otherwise; either way, a key of the wrong file is an unknown-key error.
 * Other YAML (Compose, Kubernetes) belongs in a file under examples/, linked from the doc.
 */
function kindOf(text: string): 'routes' | 'static' {
  let data: unknown;
  try {
    data = parseYaml(text);
  } catch {
    return 'routes'; // the loader reports the syntax error with its position
  }
  if (data === null || typeof data !== 'object' || Array.isArray(data)) return 'routes';
  const keys = Object.keys(data);
  return keys.length === 0 || keys.some((k) => ROUTES_KEYS.has(k)) ? 'routes' : 'static';
}

/** The errors --check would print for one block (empty when it passes). */
function checkBlock(b: YamlBlock): string[] {
  const name = `${b.file}:${b.line}`;
  // No environment: an example must not depend on the reader's variables (use ${VAR:-default}).
  const env = {};
  if (kindOf(b.text) === 'static') {
    const r = parseStaticText(b.text, name, env);
    return r.ok ? [] : r.errors.map((e) => `${e.line}:${e.col} ${e.path}: ${e.message}`);
  }
  const r = parseRoutesText(b.text, name, env);
  if (!r.ok) return r.errors.map((e) => `${e.line}:${e.col} ${e.path}: ${e.message}`);
  return runRouteTests(r.value);
}

const blocks = docFiles().flatMap((f) => yamlBlocks(f, readFileSync(join(root, f), 'utf8')));

test('the README and docs/ have YAML examples to check', () => {
  expect(blocks.filter((b) => b.file === 'README.md').length).toBeGreaterThanOrEqual(5);
  expect(blocks.filter((b) => b.file.startsWith('docs/')).length).toBeGreaterThanOrEqual(10);
  expect(blocks.some((b) => kindOf(b.text) === 'static')).toBe(true);
});

test.each(blocks.map((b) => [`${b.file}:${b.line} (${kindOf(b.text) === 'static' ? 'waygate.yaml' : 'routes file'})`, b] as const))(
  'the YAML example at %s passes --check',
  (_, b) => {
    expect(checkBlock(b)).toEqual([]);
  },
);

/** The first ```yaml block after a heading of a doc. */
function blockAfter(file: string, heading: string): YamlBlock {
  const md = readFileSync(join(root, file), 'utf8');
  const at = md.split('\n').findIndex((l) => l === heading);
  expect(at, `${file} has the heading "${heading}"`).toBeGreaterThanOrEqual(0);
  const b = blocks.find((x) => x.file === file && x.line > at + 1);
  expect(b, `a yaml block after "${heading}" in ${file}`).toBeDefined();
  return b!;
}

test("the configuration reference's full routes-file example is valid and its tests pass", () => {
  const b = blockAfter('docs/configuration.md', '## Routes files');
  const r = parseRoutesText(b.text, 'docs/configuration.md', {});
  expect(r.ok ? [] : r.errors).toEqual([]);
  if (r.ok) {
    expect(r.value.tests.length).toBeGreaterThan(0);
    expect(runRouteTests(r.value)).toEqual([]);
  }
});

test("the configuration reference's waygate.yaml example spells out the defaults", () => {
  const b = blockAfter('docs/configuration.md', '## waygate.yaml');
  const r = parseStaticText(b.text, 'docs/configuration.md', {});
  expect(r.ok ? [] : r.errors).toEqual([]);
  if (r.ok) {
    expect(r.value.limits).toEqual({ maxBodySize: 10 * 1024 ** 2, maxHeaderSize: 16 * 1024, retryBuffer: 64 * 1024, maxConnections: 10000 });
    expect(r.value.timeouts).toEqual({ clientHeader: 10_000, clientIdle: 60_000, shutdown: 30_000 });
    // Every key but the commented-out secret, each at its default.
    expect(r.value).toEqual(defaultStaticConfig());
  }
});

test.each(['routes', 'examples/demo/routes', 'examples/grpc/routes', 'examples/compose/routes', 'examples/routes', 'examples/rate-limit-replicas/routes'])('%s is valid and its tests pass', async (dir) => {
  const r = await loadRoutesDir(`${root}${dir}`, {});
  expect(r.ok ? [] : r.errors).toEqual([]);
  if (r.ok) expect(runRouteTests(r.value)).toEqual([]);
});

test('the multi-replica rate-limit recipe: its waygate.yaml gives its store: redis routes their Redis', async () => {
  const cfg = await loadStaticConfig(`${root}examples/rate-limit-replicas/waygate.yaml`, {});
  const routes = await loadRoutesDir(`${root}examples/rate-limit-replicas/routes`, {});
  if (!cfg.ok || !routes.ok) throw new Error('the recipe does not load');
  expect(cfg.value.redis?.url).toBe('redis://redis:6379');
  expect([...routes.value.middlewares.values()].map((m) => m.kind)).toEqual(['rateLimit']);
  expect(checkMiddlewares(routes.value, cfg.value)).toEqual([]);
});

// ---- links ----

/** The Markdown text with fenced code blocks blanked out (line numbers kept). */
function withoutFences(md: string): string {
  const lines = md.split('\n');
  let fence: string | undefined;
  for (let i = 0; i < lines.length; i++) {
    const m = /^\s*(`{3,}|~{3,})/.exec(lines[i]);
    if (fence === undefined && m !== null) fence = m[1];
    else if (fence !== undefined && m !== null && m[1].startsWith(fence)) fence = undefined;
    else if (fence === undefined) continue;
    lines[i] = '';
  }
  return lines.join('\n');
}

/** The Markdown text without code blocks and inline code, where links are not links. */
function prose(md: string): string {
  return withoutFences(md).replace(/`[^`\n]*`/g, '');
}

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens. */
function slug(heading: string): string {
  return heading
    .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1')
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-');
}

/** Every anchor a Markdown file's headings define (repeats get -1, -2, … as on GitHub). */
function anchors(md: string): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  for (const m of withoutFences(md).matchAll(/^#{1,6}\s+(.+?)\s*#*\s*$/gm)) {
    const base = slug(m[1]);
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    out.add(n === 0 ? base : `${base}-${n}`);
  }
  return out;
}

interface Link {
  file: string;
  target: string;
}

function relativeLinks(file: string): Link[] {
  const md = prose(readFileSync(join(root, file), 'utf8'));
  const out: Link[] = [];
  for (const m of md.matchAll(/!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) {
    const target = m[1];
    if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // https:, mailto:
    out.push({ file, target });
  }
  return out;
}

const links = docFiles().flatMap(relativeLinks);

test('the README and docs/ link to each other', () => {
  expect(links.filter((l) => l.file === 'README.md' && l.target.startsWith('docs/')).length).toBeGreaterThan(0);
});

test('every relative link in the README and docs/ points at a file that exists', () => {
  const broken: string[] = [];
  for (const { file, target } of links) {
    const [path, fragment] = target.split('#', 2) as [string, string | undefined];
    const resolved = path === '' ? join(root, file) : join(root, dirname(file), decodeURIComponent(path.split('?')[0]));
    const shown = `${file}: (${target})`;
    if (!resolved.startsWith(root) || !existsSync(resolved)) {
      broken.push(`${shown} → ${relative(root, resolved)} does not exist`);
      continue;
    }
    if (fragment !== undefined && fragment !== '' && resolved.endsWith('.md') && !anchors(readFileSync(resolved, 'utf8')).has(fragment)) {
      broken.push(`${shown} → no heading with anchor #${fragment} in ${relative(root, resolved)}`);
    }
  }
  expect(broken).toEqual([]);
});

// One configuration problem, located for a human: `routes/shop.yaml:12:7 routes[1].pool: ...`.

/** A config problem at a 1-based line and column of a file; `path` is the key path ("" when none). */
export interface ConfigError {
  file: string;
  line: number;
  col: number;
  path: string;
  message: string;
}

/** Returns `file:line:col path: message`, or `file:line:col message` when the error has no key path. */
export function formatConfigError(e: ConfigError): string {
  return e.path === '' ? `${e.file}:${e.line}:${e.col} ${e.message}` : `${e.file}:${e.line}:${e.col} ${e.path}: ${e.message}`;
}

/** Returns the errors sorted by file, line and column (stable for equal positions). */
export function sortErrors(errors: readonly ConfigError[]): ConfigError[] {
  return [...errors].sort((a, b) => (a.file < b.file ? -1 : a.file > b.file ? 1 : a.line - b.line || a.col - b.col));
}

/** Returns a key path as written in messages: `routes[1].match.headers.user-agent`. */
export function formatKeyPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else {
      const key = String(seg);
      // Keys that would read ambiguously after a dot are quoted, like jq does.
      const plain = /^[A-Za-z0-9_-][A-Za-z0-9_:-]*$/.test(key);
      out += plain ? (out === '' ? key : `.${key}`) : `[${JSON.stringify(key)}]`;
    }
  }
  return out;
}

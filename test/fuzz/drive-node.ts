// Node's driver: reads a case through http.request over a keep-alive Agent with maxSockets 1,
// so llhttp (strict: no insecureHTTPParser) parses it, then sends a follow-up request through the
// same agent to see whether the socket is used again.
import { Agent, request } from 'node:http';
import type { ClientRequest, IncomingMessage } from 'node:http';
import type { FuzzCase } from './case.ts';
import { FOLLOW_UP_TIMEOUT_MS, caughtUp, trailerRecord, within } from './observation.ts';
import type { Observation } from './observation.ts';
import { FOLLOW_UP_BODY, serveCase } from './upstream.ts';

const EXPECTS_BODY = new Set(['POST', 'PUT', 'PATCH']);

interface Run {
  obs: Observation;
  req: ClientRequest;
  res: IncomingMessage | undefined;
  /** 'end' of the response, with res.complete. */
  ended: boolean;
  failure: Error | undefined;
  closed: boolean;
  /** Resolves when the exchange ended either way. */
  done: Promise<void>;
}

/** Sends one request and records what Node reports. */
function send(agent: Agent, port: number, method: string, path: string): Run {
  const obs: Observation = { verdict: 'pending', interim: [], body: Buffer.alloc(0), violations: [] };
  const chunks: Buffer[] = [];
  let finish: () => void = () => {};
  // Same request as the builtin client's: no body, a Content-Length: 0 where a body is expected.
  const req = request({ host: '127.0.0.1', port, method, path, agent, headers: EXPECTS_BODY.has(method) ? { host: 'fuzz.test', 'content-length': '0' } : { host: 'fuzz.test' } });
  // Node keeps only the first 2000 header pairs by default and drops the rest without a word; the
  // builtin client has no such cap (its limit is the head's size). The parser is what is compared.
  req.maxHeadersCount = 0;
  const run: Run = { obs, req, res: undefined, ended: false, failure: undefined, closed: false, done: new Promise<void>((r) => (finish = r)) };
  req.on('information', (info) => obs.interim.push({ status: info.statusCode, raw: [...info.rawHeaders] }));
  req.on('response', (res) => {
    run.res = res;
    obs.status = res.statusCode;
    obs.reason = res.statusMessage;
    obs.raw = [...res.rawHeaders];
    res.on('data', (d: Buffer) => {
      chunks.push(d);
      obs.body = Buffer.concat(chunks);
    });
    res.on('end', () => {
      run.ended = res.complete;
      obs.trailers = trailerRecord(res.rawTrailers);
      finish();
    });
    res.on('error', (err) => {
      run.failure ??= err;
      finish();
    });
  });
  req.on('error', (err) => {
    run.failure ??= err;
    finish();
  });
  req.on('close', () => {
    run.closed = true;
    // A response still being read ends in its own 'end' or 'error'; without one, this is the end.
    if (run.res === undefined) finish();
  });
  req.end();
  return run;
}

/** What a run amounts to once the upstream has sent everything and the client had time to read it. */
function verdictOf(run: Run): Observation['verdict'] {
  if (run.ended && run.res?.complete === true) return 'accepted';
  if (run.failure !== undefined || run.closed) return 'rejected';
  return 'pending';
}

/** Reads `c` with Node's own client (llhttp). */
export async function driveNode(c: FuzzCase, settleMs?: number): Promise<Observation> {
  const up = await serveCase(c);
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  try {
    const first = send(agent, up.port, c.method, '/case');
    await caughtUp(c, up, settleMs);
    const obs = first.obs;
    obs.verdict = verdictOf(first);
    if (obs.verdict === 'rejected' && first.failure !== undefined) {
      obs.error = `${(first.failure as { code?: string }).code ?? 'ERR'}: ${first.failure.message}`;
    } else if (obs.verdict === 'rejected') {
      obs.error = 'closed without a complete response';
    }
    if (obs.verdict !== 'accepted') obs.trailers = undefined;
    if (obs.verdict === 'pending') {
      first.req.destroy();
      await first.done;
    }
    const follow = send(agent, up.port, 'GET', '/follow-up');
    const ok = await within(follow.done.then(() => true), FOLLOW_UP_TIMEOUT_MS, false);
    if (!ok) follow.req.destroy();
    const f = follow.obs;
    obs.followUp = !ok ? 'hung' : verdictOf(follow) === 'accepted' && f.status === 200 && f.body.toString('latin1') === FOLLOW_UP_BODY ? 'ok' : follow.failure?.message ?? `status ${f.status} body ${JSON.stringify(f.body.toString('latin1').slice(0, 40))}`;
    if (obs.verdict === 'accepted') obs.reused = up.requestsOnCase() > 1;
    return obs;
  } finally {
    agent.destroy();
    await up.close();
  }
}

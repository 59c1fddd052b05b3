// A cluster worker: waits for the primary's config, runs a Gateway on the shared public
// listeners (no admin listener: the primary owns it) and answers the primary's calls.
//
// main.ts keeps signals and exit codes. This file uses process.send and process.on('message')
// because in a cluster worker the IPC channel to the primary is only reachable through `process`.
import cluster from 'node:cluster';
import type { ExplainQuery } from '../admin/admin.ts';
import { formatConfigError, loadRoutesDir } from '../config/load.ts';
import type { StaticConfig } from '../config/schema.ts';
import { Gateway } from '../gateway/gateway.ts';
import { primaryLink } from '../middleware/limits/cluster.ts';
import { createLoggers } from '../observe/logger.ts';
import type { FromWorker, Op, ToWorker } from './ipc.ts';
import { sharedStdout } from './stdout.ts';

/** True in a process forked by the cluster primary. */
export function isClusterWorker(): boolean {
  return cluster.isWorker;
}

/** A worker's life as main.ts sees it. */
export interface ClusterWorker {
  /** Starts the drain (idempotent): the primary's order, or a signal sent to this worker. */
  drain(): void;
  /** Resolves with the exit code once the worker drained (0) or failed to start (1). */
  readonly done: Promise<number>;
  /** Flushes the worker's logs. */
  flush(): void;
}

/** Runs this process as a cluster worker: waits for the primary's config, starts a Gateway and answers the primary. */
export function runWorker(env: NodeJS.ProcessEnv): ClusterWorker {
  let gateway: Gateway | undefined;
  let starting: Promise<Gateway | undefined> | undefined;
  let draining = false;
  let flush = (): void => {};
  let finish!: (code: number) => void;
  const done = new Promise<number>((r) => (finish = r));
  // process.send is defined in a forked worker; a send on a closed channel is no one's to answer.
  const send = (m: FromWorker): void => {
    try {
      process.send?.(m);
    } catch {
      // the primary is gone: node:cluster exits this worker on the disconnect
    }
  };

  // `store: local` limits live in the primary: the Gateway's LimitStores ask it through this link.
  primaryLink.attach((ask) => send({ type: 'waygate:limits', ...ask }));

  const start = async (m: Extract<ToWorker, { type: 'waygate:start' }>): Promise<Gateway | undefined> => {
    const { log: baseLog, access: baseAccess, lifecycle } = createLoggers({ level: m.config.log.level, access: m.config.log.access, destination: sharedStdout() });
    // Lines from every worker share stdout: each one names its process.
    const bind = { worker: m.worker, pid: process.pid };
    const log = baseLog.child(bind);
    const access = baseAccess?.child(bind);
    flush = () => lifecycle.flush();
    let routes = m.routes;
    if (m.fromDisk) {
      // A replacement serves what its siblings serve since the last reload: the directory as it is
      // now. If it no longer validates, the routes the primary validated at start are next best.
      const loaded = await loadRoutesDir(m.config.routesDir, env);
      if (loaded.ok) routes = loaded.value;
      else log.error({ errors: loaded.errors.map(formatConfigError) }, 'routes on disk are invalid; starting with the routes validated at start');
    }
    // The primary owns the admin API; a worker binds only the public listeners.
    const config: StaticConfig = { ...m.config, admin: { ...m.config.admin, address: null } };
    try {
      const g = await Gateway.start({ config, routes, log, access, env, shared: true });
      gateway = g;
      if (draining) {
        await g.close();
        finish(0);
        return g;
      }
      send({ type: 'waygate:listening', addresses: g.addresses });
      return g;
    } catch (err) {
      log.fatal({ err: (err as Error).message }, 'failed to start');
      send({ type: 'waygate:failed', error: (err as Error).message });
      finish(1);
      return undefined;
    }
  };

  const answer = async (op: Op, arg: unknown): Promise<unknown> => {
    const g = gateway;
    if (g === undefined) throw new Error('the gateway is not running');
    switch (op) {
      case 'metrics':
        return g.metrics.registry.getMetricsAsJSON();
      case 'reload':
        return g.reload();
      case 'status':
        return g.status();
      case 'explain':
        return g.explain(arg as ExplainQuery);
    }
  };

  process.on('message', (m: ToWorker) => {
    switch (m?.type) {
      case 'waygate:start':
        starting ??= start(m);
        return;
      case 'waygate:call':
        answer(m.op, m.arg).then(
          (value) => send({ type: 'waygate:reply', id: m.id, ok: true, value }),
          (err: Error) => send({ type: 'waygate:reply', id: m.id, ok: false, error: err.message }),
        );
        return;
      case 'waygate:drain':
        drain();
        return;
      case 'waygate:limits-answer':
        primaryLink.settle(m);
        return;
    }
  });
  send({ type: 'waygate:hello' });

  const drain = (): void => {
    if (draining) return;
    draining = true;
    if (gateway !== undefined) void gateway.close().then(() => finish(0));
    else if (starting === undefined) finish(0);
    // else: start() sees `draining` and closes what it opened
  };
  return { drain, done, flush: () => flush() };
}

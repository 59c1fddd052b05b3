// Multi-process mode (SPEC §1 `--workers N|auto`). A primary forks N workers with node:cluster;
// each worker runs a Gateway on the shared public listeners and nothing else. The primary binds
// no public listener: it serves the admin API itself from what its workers report over IPC,
// replaces workers that die, and fans reloads and the drain out to them.
//
// primary.ts supervision and the admin API's source, ipc.ts the messages and calls between the
// two, metrics.ts the aggregation of the workers' metrics, worker.ts a worker's runtime,
// stdout.ts the stdout they share. This file is main.ts's one import.
export { ClusterPrimary, workerCount } from './primary.ts';
export type { ClusterOptions } from './primary.ts';
export { isClusterWorker, runWorker } from './worker.ts';
export type { ClusterWorker } from './worker.ts';
export { sharedStdout } from './stdout.ts';

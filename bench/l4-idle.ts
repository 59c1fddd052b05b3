// The bench's idle-connection case (issue 14): many TCP connections held open through an L4 proxy.
//
//   node bench/l4-idle.ts hold PORT          # the backend: greets each connection with one byte, holds it
//   node bench/l4-idle.ts open PORT N        # opens N connections to PORT (the proxy), holds them
//
// `open` waits for every connection to receive the backend's greeting byte (so each one went
// through the proxy and reached the backend), prints one JSON line
//   {"event":"ready","wanted":N,"open":n,"greeted":g,"failed":f,"ms":t,"firstError":"..."}
// and holds them until its stdin ends or reads "close"; then it closes them all, prints
// {"event":"closed"} and exits. bench/run.ts reads the proxy's RSS in between.
// Each side needs one descriptor per connection (the proxy two); Node raises its soft
// open-files limit to the hard one at start.
import { createConnection, createServer } from 'node:net';
import type { Socket } from 'node:net';

const [mode, portArg, nArg] = process.argv.slice(2);
const port = Number(portArg);
if (!Number.isInteger(port) || port <= 0 || (mode !== 'hold' && mode !== 'open')) {
  process.stderr.write('usage: node bench/l4-idle.ts hold PORT | open PORT N\n');
  process.exit(2);
}

if (mode === 'hold') {
  let open = 0;
  const server = createServer({ allowHalfOpen: false }, (s) => {
    open++;
    s.setNoDelay(true);
    s.on('error', () => {});
    s.on('close', () => void open--);
    s.resume(); // whatever a client sends is read and dropped
    s.write('+');
  });
  server.on('error', (err) => {
    process.stderr.write(`hold: ${err.message}\n`);
    process.exit(1);
  });
  server.listen({ port, host: '127.0.0.1', backlog: 4096 });
  // SIGUSR2 prints how many are held (for a person watching; the bench does not need it).
  process.on('SIGUSR2', () => process.stderr.write(`hold: ${open} open\n`));
} else {
  const wanted = Number(nArg);
  const IN_FLIGHT = 200; // connects not yet greeted, at most (the proxies' accept backlogs are 511+)
  const TIMEOUT = 60_000;
  const sockets: Socket[] = [];
  let started = 0, greeted = 0, failed = 0, settled = 0;
  let firstError: string | undefined;
  const t0 = Date.now();
  let done = false;

  const finish = (): void => {
    if (done) return;
    done = true;
    const open = sockets.filter((s) => !s.destroyed).length;
    process.stdout.write(JSON.stringify({ event: 'ready', wanted, open, greeted, failed, ms: Date.now() - t0, firstError }) + '\n');
  };
  const next = (): void => {
    while (!done && started < wanted && started - settled < IN_FLIGHT) {
      started++;
      let counted = false;
      const settle = (ok: boolean, why?: string): void => {
        if (counted) return;
        counted = true;
        settled++;
        if (ok) greeted++;
        else {
          failed++;
          firstError ??= why;
        }
        if (settled === wanted) finish();
        else next();
      };
      const s = createConnection({ port, host: '127.0.0.1' });
      sockets.push(s);
      s.once('data', () => settle(true)); // the backend's greeting, through the proxy
      s.on('error', (err) => settle(false, err.message));
      s.on('close', () => settle(false, 'closed before the greeting'));
    }
  };
  if (wanted > 0) next();
  else finish();
  const timer = setTimeout(finish, TIMEOUT);

  const close = (): void => {
    clearTimeout(timer);
    finish();
    for (const s of sockets) s.destroy();
    process.stdout.write(JSON.stringify({ event: 'closed' }) + '\n');
    setTimeout(() => process.exit(0), 100);
  };
  process.stdin.setEncoding('utf8');
  process.stdin.on('data', (d: string) => {
    if (d.includes('close')) close();
  });
  process.stdin.on('end', close);
}

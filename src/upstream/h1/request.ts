// One request on waygate's HTTP/1.1 upstream client (h1-pool.ts): its state, the controller its
// handler pauses, resumes or aborts it with, and the sending of a streamed body.
import type { Socket } from 'node:net';
import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';

/** An error with an undici-style code, which the forwarder maps to a status and a retry rule. */
export function coded(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
}

function ignore(): void {}

/** What a request and its upload need of the connection carrying them (H1Conn). */
export interface RequestConn {
  readonly socket: Socket;
  /** Ends the request with an error and closes the connection. */
  fail(req: H1Request, err: Error): void;
  /** Continues reading after the handler resumed. */
  resumeReading(): void;
  /** Body bytes went out (the response timeout counts from the last of them). */
  uploaded(): void;
}

/** One request: its state, and the controller the handler pauses, resumes or aborts it with. */
export class H1Request implements Dispatcher.DispatchController {
  readonly method: string;
  readonly path: string;
  readonly headers: string[];
  readonly body: Buffer | Readable | null;
  readonly headersTimeout: number;
  readonly bodyTimeout: number;
  readonly handler: Dispatcher.DispatchHandler;
  conn: RequestConn | undefined;
  aborted = false;
  paused = false;
  done = false;
  reason: Error | null = null;
  rawHeaders: string[] | undefined;
  /**
   * True while onResponseData gets the body's last bytes and onResponseEnd follows in the same
   * call stack: the handler may hold the chunk and send it with the end (one write, not two).
   */
  final = false;
  /** Already sent again after a kept-alive connection closed under it (H1Conn#staleRetry). */
  replayed = false;

  constructor(method: string, path: string, headers: string[], body: Buffer | Readable | null, headersTimeout: number, bodyTimeout: number, handler: Dispatcher.DispatchHandler) {
    this.method = method;
    this.path = path;
    this.headers = headers;
    this.body = body;
    this.headersTimeout = headersTimeout;
    this.bodyTimeout = bodyTimeout;
    this.handler = handler;
  }

  abort(reason: Error): void {
    if (this.done || this.aborted) return;
    this.aborted = true;
    this.reason = reason;
    const conn = this.conn;
    if (conn !== undefined) conn.fail(this, reason);
    // Not yet on a connection (aborted in onRequestStart): report it all the same.
    else {
      this.done = true;
      queueMicrotask(() => this.handler.onResponseError?.(this, reason));
    }
  }

  pause(): void {
    this.paused = true;
    this.conn?.socket.pause();
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    this.conn?.resumeReading();
  }
}

/** Sends a request body stream: Content-Length as declared, or chunked; with backpressure. */
export class Upload {
  readonly #conn: RequestConn;
  readonly #req: H1Request;
  readonly #stream: Readable;
  readonly #length: number;
  #sent = 0;
  finished = false;

  constructor(conn: RequestConn, req: H1Request, stream: Readable, length: number) {
    this.#conn = conn;
    this.#req = req;
    this.#stream = stream;
    this.#length = length;
    stream.on('data', this.#onData);
    stream.on('end', this.#onEnd);
    stream.on('error', this.#onError);
    conn.socket.on('drain', this.#onDrain);
    if (stream.isPaused()) stream.resume();
  }

  #onData = (chunk: Buffer): void => {
    this.#sent += chunk.length;
    if (this.#length !== -1 && this.#sent > this.#length) {
      this.#conn.fail(this.#req, coded('UND_ERR_REQ_CONTENT_LENGTH_MISMATCH', 'request body longer than its Content-Length'));
      return;
    }
    const socket = this.#conn.socket;
    let ok: boolean;
    if (this.#length === -1) {
      socket.cork();
      socket.write(`${chunk.length.toString(16)}\r\n`);
      socket.write(chunk);
      ok = socket.write('\r\n');
      socket.uncork();
    } else {
      ok = socket.write(chunk);
    }
    this.#req.handler.onBodySent?.(chunk);
    this.#conn.uploaded();
    if (!ok) this.#stream.pause();
  };

  #onDrain = (): void => {
    if (!this.finished) this.#stream.resume();
  };

  #onEnd = (): void => {
    if (this.#length !== -1 && this.#sent !== this.#length) {
      this.#conn.fail(this.#req, coded('UND_ERR_REQ_CONTENT_LENGTH_MISMATCH', 'request body shorter than its Content-Length'));
      return;
    }
    this.finished = true;
    if (this.#length === -1) this.#conn.socket.write('0\r\n\r\n');
    this.#conn.uploaded();
  };

  #onError = (err: Error): void => {
    this.#conn.fail(this.#req, err);
  };

  /** Detaches from the stream; destroys it when it was not sent to its end. */
  stop(destroy: boolean): void {
    const stream = this.#stream;
    stream.off('data', this.#onData);
    stream.off('end', this.#onEnd);
    stream.off('error', this.#onError);
    // The client's side may still destroy the stream with an error (a client gone mid-upload):
    // it is this request's end, already handled, and must not surface as an uncaught error.
    stream.on('error', ignore);
    this.#conn.socket.off('drain', this.#onDrain);
    if (destroy && !stream.destroyed) stream.destroy();
  }
}


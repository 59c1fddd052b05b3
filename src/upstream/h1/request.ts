// One request on waygate's HTTP/1.1 upstream client (pool.ts): its state, the controller its
// handler pauses, resumes or aborts it with, and the sending of a streamed body.
import type { Socket } from 'node:net';
import type { Readable } from 'node:stream';
import { coded } from '../client.ts';
import type { UpstreamController, UpstreamHandler, UpstreamRequest } from '../client.ts';

/** What a request and its upload need of the connection carrying them (H1Conn). */
export interface RequestConn {
  readonly socket: Socket;
  /** Ends the request with an error and closes the connection. */
  fail(req: H1Request, err: Error): void;
  /** Stops reading the response (the handler paused). */
  pauseReading(): void;
  /** Continues reading after the handler resumed. */
  resumeReading(): void;
  /** Body bytes went out (the response timeout counts from the last of them). */
  uploaded(): void;
}

/** One request: its state, and the controller the handler steers it with. */
export class H1Request implements UpstreamController {
  readonly spec: UpstreamRequest;
  readonly handler: UpstreamHandler;
  conn: RequestConn | undefined;
  aborted = false;
  paused = false;
  /** Ended (completed or failed): no call reaches the handler any more. */
  done = false;
  /** Already sent again after a kept-alive connection closed under it (H1Conn#staleRetry). */
  replayed = false;

  constructor(spec: UpstreamRequest, handler: UpstreamHandler) {
    this.spec = spec;
    this.handler = handler;
  }

  abort(reason: Error): void {
    if (this.done || this.aborted) return;
    this.aborted = true;
    const conn = this.conn;
    if (conn !== undefined) conn.fail(this, reason);
    else this.failDetached(reason);
  }

  /** Ends a request that is on no connection (refused before one, or aborted in onStart). */
  failDetached(err: Error): void {
    if (this.done) return;
    this.done = true;
    // The contract: onError never runs inside request(), abort() or another handler call.
    queueMicrotask(() => this.handler.onError(err));
  }

  pause(): void {
    this.paused = true;
    this.conn?.pauseReading();
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    this.conn?.resumeReading();
  }
}

/**
 * Sends a request body stream: Content-Length as declared, or chunked; with backpressure. The
 * stream is the caller's (forward/body.ts owns it): stop() detaches and leaves it to its owner.
 */
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
  }

  /** Starts reading the stream; a stream that already failed or ended is handled at once. */
  start(): void {
    const stream = this.#stream;
    if (stream.errored !== null || stream.destroyed) {
      this.#conn.fail(this.#req, stream.errored ?? coded('UND_ERR_ABORTED', 'the request body stream was destroyed'));
      return;
    }
    stream.on('data', this.#onData);
    stream.on('end', this.#onEnd);
    stream.on('error', this.#onError);
    this.#conn.socket.on('drain', this.#onDrain);
    if (stream.readableEnded) this.#onEnd();
    else if (stream.isPaused()) stream.resume();
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
    this.#req.handler.onBodySent(chunk.length);
    this.#conn.uploaded();
    if (!ok) this.#stream.pause();
  };

  #onDrain = (): void => {
    if (!this.finished) this.#stream.resume();
  };

  #onEnd = (): void => {
    if (this.finished) return;
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

  /** Detaches from the stream and the socket; the stream stays as it is, for its owner. */
  stop(): void {
    const stream = this.#stream;
    stream.off('data', this.#onData);
    stream.off('end', this.#onEnd);
    stream.off('error', this.#onError);
    this.#conn.socket.off('drain', this.#onDrain);
    // A half-sent stream is left paused: nothing reads it until its owner decides.
    if (!this.finished && !stream.destroyed) stream.pause();
  }
}

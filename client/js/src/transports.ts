// The three ways a client reads its queue: a graphql-ws WebSocket, a
// graphql-sse stream, and HTTP long-poll. Each runs until its signal aborts
// (it then resolves) or the stream fails (it rejects with a typed error).

import { createClient as createWsClient } from 'graphql-ws/client';
import { createClient as createSseClient, NetworkError as SseNetworkError } from 'graphql-sse';
import type { PollQuery, PollQueryVariables, StreamSubscription } from './generated.js';
import { fromErrors, MeshgateError, NetworkFailure, post, type FetchFn } from './http.js';
import * as ops from './operations.js';

/** Transport names a way to read the queue. */
export type Transport = 'websocket' | 'sse' | 'poll';

/** Notification is one entry of the queue, as the gateway sends it. */
export type Notification = StreamSubscription['notifications'];

/** Refused: the transport never opened although the gateway answered HTTP
 * on the same URL a moment before: a proxy or the network refuses it. */
export class Refused extends Error {
  readonly transport: Transport;
  constructor(transport: Transport, detail: string) {
    super(`${transport} refused: ${detail}`);
    this.name = 'Refused';
    this.transport = transport;
  }
}

/** StreamEnded: the gateway ended a stream it had opened (a node going
 * away closes with 1001); reconnect and resume. */
export class StreamEnded extends Error {
  readonly code: number | undefined;
  constructor(message: string, code?: number) {
    super(message);
    this.name = 'StreamEnded';
    this.code = code;
  }
}

/** Session is what a transport needs for one connection. */
export interface Session {
  url: string;
  token: () => string;
  queue: string;
  /** The last seq handled; read again for every (re)subscription. */
  after: () => number;
  onOpen: () => void;
  onNotification: (n: Notification) => void;
  signal: AbortSignal;
  fetchFn: FetchFn;
  webSocketImpl: unknown;
  /** How long one long-poll waits on the gateway, in seconds. */
  pollWaitSeconds: number;
  /** How long to poll before trying the preferred transport again, in ms. */
  pollPeriodMs: number;
}

function aborted(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener('abort', () => resolve(), { once: true });
  });
}

interface CloseLike {
  code: number;
  reason?: string;
}

function isCloseLike(e: unknown): e is CloseLike {
  return typeof e === 'object' && e !== null && typeof (e as CloseLike).code === 'number';
}

/** websocket streams over graphql-transport-ws with the graphql-ws client.
 * graphql-ws does not retry here: the client's own loop does, because it
 * must re-check the queue and move between nodes and transports. */
export function websocket(s: Session): Promise<void> {
  const wsURL = s.url.replace(/^http/, 'ws');
  let opened = false;
  const client = createWsClient({
    url: wsURL,
    webSocketImpl: s.webSocketImpl,
    lazy: true,
    retryAttempts: 0,
    connectionAckWaitTimeout: 10_000,
    keepAlive: 15_000,
    connectionParams: () => ({ authorization: `Bearer ${s.token()}` }),
    on: {
      opened: () => {
        opened = true;
      },
      connected: () => s.onOpen(),
    },
  });
  return new Promise<void>((resolve, reject) => {
    let settled = false;
    const finish = (err?: unknown) => {
      if (settled) return;
      settled = true;
      dispose();
      void client.dispose();
      if (err === undefined) resolve();
      else reject(err);
    };
    const dispose = client.subscribe<StreamSubscription>(
      { query: ops.stream, variables: { queue: s.queue, after: s.after() } },
      {
        next: (r) => {
          if (r.errors?.length) finish(fromErrors(r.errors));
          else if (r.data) s.onNotification(r.data.notifications);
        },
        error: (e: unknown) => {
          if (Array.isArray(e)) return finish(fromErrors(e));
          if (isCloseLike(e)) {
            if (e.code === 4401 || e.code === 4403) return finish(new MeshgateError('UNAUTHENTICATED', `WebSocket closed ${e.code} ${e.reason ?? ''}`));
            if (!opened) return finish(new Refused('websocket', `closed ${e.code} before opening`));
            return finish(new StreamEnded(`WebSocket closed ${e.code} ${e.reason ?? ''}`, e.code));
          }
          if (!opened) return finish(new Refused('websocket', String(e)));
          finish(new StreamEnded(`WebSocket: ${String(e)}`));
        },
        complete: () => finish(new StreamEnded('stream completed by the gateway')),
      },
    );
    void aborted(s.signal).then(() => finish());
  });
}

/** sse streams over graphql-sse (distinct connections mode). It sends
 * Last-Event-ID with the last seq, which gateways that stamp `id:` on
 * events resume from; `after` says the same to those that do not. */
export function sse(s: Session): Promise<void> {
  let connected = false;
  const client = createSseClient({
    url: s.url,
    retryAttempts: 0,
    fetchFn: s.fetchFn,
    headers: () => {
      const h: Record<string, string> = { authorization: `Bearer ${s.token()}` };
      const after = s.after();
      if (after > 0) h['last-event-id'] = String(after);
      return h;
    },
  });
  return new Promise<void>((resolve, reject) => {
    let settled = false;
    const finish = (err?: unknown) => {
      if (settled) return;
      settled = true;
      dispose();
      client.dispose();
      if (err === undefined) resolve();
      else reject(err);
    };
    const dispose = client.subscribe<StreamSubscription>(
      { query: ops.stream, variables: { queue: s.queue, after: s.after() } },
      {
        next: (r) => {
          if (r.errors?.length) finish(fromErrors(r.errors));
          else if (r.data) s.onNotification(r.data.notifications);
        },
        error: (e: unknown) => {
          if (Array.isArray(e)) return finish(fromErrors(e));
          if (e instanceof SseNetworkError) {
            const status = e.response?.status;
            if (status === 401 || status === 403) {
              // The gateway refuses a bad token with 401; a proxy's 403 is a refusal.
              return finish(status === 401 ? new MeshgateError('UNAUTHENTICATED', 'SSE 401') : new Refused('sse', 'HTTP 403'));
            }
            if (!connected && status !== undefined && status !== 404 && status !== 503) return finish(new Refused('sse', `HTTP ${status}`));
            return finish(new NetworkFailure(`SSE: ${e.message}`, status, e));
          }
          finish(connected ? new StreamEnded(`SSE: ${String(e)}`) : new NetworkFailure(`SSE: ${String(e)}`, undefined, e));
        },
        complete: () => finish(new StreamEnded('stream completed by the gateway')),
      },
      {
        connected: () => {
          connected = true;
          s.onOpen();
        },
      },
    );
    void aborted(s.signal).then(() => finish());
  });
}

/** poll reads the queue with HTTP long-polls for pollPeriodMs, then
 * resolves so that the client tries its preferred transport again. */
export async function poll(s: Session): Promise<void> {
  const until = Date.now() + s.pollPeriodMs;
  let first = true;
  while (!s.signal.aborted && Date.now() < until) {
    const signal = AbortSignal.any([s.signal, AbortSignal.timeout((s.pollWaitSeconds + 15) * 1000)]);
    let page: PollQuery;
    try {
      page = await post<PollQuery>(
        s.fetchFn,
        s.url,
        s.token(),
        ops.poll,
        { queue: s.queue, after: s.after(), wait: first ? 0 : s.pollWaitSeconds } satisfies PollQueryVariables,
        signal,
      );
    } catch (err) {
      if (s.signal.aborted) return;
      throw err;
    }
    if (first) {
      first = false;
      s.onOpen();
    }
    for (const n of page.notifications.items) s.onNotification(n);
  }
}

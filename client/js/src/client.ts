// The client: one queue for this device, the resources it watches, and the
// five recovery steps of client/OTHER-LANGUAGES.md done for the caller.

import { Channel, Emitter } from './events.js';
import type {
  CreateQueueMutation,
  CreateQueueMutationVariables,
  RenewQueueMutation,
  SubscribeMutation,
  SubscribeMutationVariables,
  UnsubscribeMutation,
} from './generated.js';
import { isCode, MeshgateError, NetworkFailure, post, tokenExpiry, type FetchFn } from './http.js';
import * as ops from './operations.js';
import { parseSaved, type KeyValueStorage, type Saved } from './storage.js';
import { poll, Refused, sse, websocket, type Notification, type Session, type Transport } from './transports.js';

/** State is what the client is doing. */
export type State =
  /** Before the first stream opened. */
  | 'connecting'
  /** Streaming over WebSocket or SSE: notifications arrive as they land. */
  | 'live'
  /** A stream failed; reconnecting (with backoff), re-checking the queue. */
  | 'recovering'
  /** Reading with HTTP long-polls because streams are refused. */
  | 'polling'
  /** close() was called. */
  | 'closed';

/** WatchEventKind says what a WatchEvent reports: the gateway's kinds for a
 * resource, and two the client makes itself. CHANGED_WHILE_AWAY: it
 * subscribed again (its queue was lost), or watch() was given a knownEtag,
 * and the resource's etag is not the one it knew; after an OVERFLOW a
 * RESYNC says it instead (see ClientEvent). ETAG_UNKNOWN: nobody knows
 * the resource's current version, so it may have changed: re-read it from
 * its source. It comes from a RESYNC the gateway flags `etagUnknown` (a
 * subscriber list made again after its holder died, and no surviving queue
 * or publisher knew the version), and from a subscribe that answered ''
 * for a resource the client knew an etag of (its publisher forgot, as the
 * built-in `user:` one does when it restarts). Its etag is ''; `watch.etag`
 * keeps the last etag known, so a later change is still reported. */
export type WatchEventKind = 'CHANGED' | 'RESYNC' | 'REVOKED' | 'CHANGED_WHILE_AWAY' | 'ETAG_UNKNOWN';

/** WatchEvent is one thing that happened to a watched resource. */
export interface WatchEvent {
  kind: WatchEventKind;
  resource: string;
  /** The resource's etag after the event ('' for REVOKED and ETAG_UNKNOWN). */
  etag: string;
  /** The notification's seq in the client's queue; 0 for CHANGED_WHILE_AWAY, and for an ETAG_UNKNOWN a subscribe made. */
  seq: number;
  /** When the publisher reported it (RFC 3339). */
  publishedAt: string;
  /** What the publisher attached (null if nothing). */
  payload: unknown;
}

/** ClientEvent is an INVITE from another device, or an OVERFLOW (the
 * gateway dropped notifications; the client subscribes again naming the
 * etag it holds of each resource, and each resource that moved gets a
 * RESYNC with its current etag after the notifications still queued). */
export interface ClientEvent {
  kind: 'INVITE' | 'OVERFLOW';
  seq: number;
  publishedAt: string;
  payload: unknown;
  /** For INVITE: the inviting device, "user/device". */
  from?: string;
}

/** Stats are the client's counters since it was created. */
export interface Stats {
  notifications: number;
  duplicates: number;
  reconnects: number;
  queuesCreated: number;
  resubscribes: number;
  tokenRefreshes: number;
  /** Moves from a refused transport to the next (websocket → sse → poll). */
  fallbacks: number;
  changedWhileAway: number;
  /** ETAG_UNKNOWN events delivered. */
  etagUnknown: number;
  transport: Transport | undefined;
  url: string;
}

/** ClientOptions configure createClient. Only token and a url are needed. */
export interface ClientOptions {
  /** The gateway's /graphql endpoint (https: or http:). */
  url?: string;
  /** Nodes of one gateway, tried in turn when one fails (with url first if both are given). */
  urls?: string[];
  /** The device's bearer token, or a function returning a fresh one. The
   * function is called at start, before the token's `exp` (renewBeforeMs
   * ahead), and when the gateway refuses it (HTTP UNAUTHENTICATED,
   * WebSocket close 4401/4403). */
  token: string | (() => string | Promise<string>);
  /** A WebSocket class: the global one by default. Node 20 has none: pass
   * the `ws` package's. */
  webSocketImpl?: unknown;
  /** Where to keep the queue name, last seq and etags, so that a new client
   * (a page reload) resumes the same queue: `localStorage` in a browser.
   * Default: nothing persisted. */
  storage?: KeyValueStorage;
  /** The key under storage. Default "meshgate". Use one per device/user. */
  storageKey?: string;
  /** The transports to use, in order of preference. Default
   * ["websocket", "sse", "poll"]. */
  transports?: Transport[];
  /** The queue's lease in seconds (1-3600). Default 300. */
  queueTtlSeconds?: number;
  /** Reconnect delays: exponential from minBackoffMs to maxBackoffMs, with
   * full jitter. Defaults 100 and 10000. */
  minBackoffMs?: number;
  maxBackoffMs?: number;
  /** How long before the token's exp to renew it. Default 60000; a token
   * with less left than that is renewed halfway through what is left. */
  renewBeforeMs?: number;
  /** Consecutive refusals of a transport (while HTTP works) before the
   * client moves to the next one. Default 2. */
  refusalsBeforeFallback?: number;
  /** How long to stay on a fallback transport before trying the preferred
   * one again. Default 60000. */
  retryPreferredAfterMs?: number;
  /** Seconds one long-poll waits at the gateway (1-60). Default 25. */
  pollWaitSeconds?: number;
  /** The fetch function. Default the global fetch. */
  fetch?: FetchFn;
}

interface WatchEvents {
  /** Every event, in seq order. */
  event: WatchEvent;
  CHANGED: WatchEvent;
  RESYNC: WatchEvent;
  REVOKED: WatchEvent;
  CHANGED_WHILE_AWAY: WatchEvent;
  /** Re-read the resource from its source: see WatchEventKind. */
  ETAG_UNKNOWN: WatchEvent;
  /** The watch ended: after REVOKED, close(), or an error subscribing
   * (FORBIDDEN, BAD_REQUEST: a MeshgateError). */
  end: Error | undefined;
}

/** Watch is one watched resource: an async iterable of its events and an
 * emitter of them (`on("CHANGED", …)`, `on("event", …)`). */
export class Watch extends Emitter<WatchEvents> implements AsyncIterable<WatchEvent> {
  /** The watched resource, `scheme:path`. */
  readonly resource: string;
  /** Proof given to the resource's publisher when subscribing. */
  readonly proof: string | undefined;
  /** Resolves once the resource is subscribed; rejects if it cannot be. */
  readonly ready: Promise<void>;
  #client: Client;
  #ended = false;
  #endErr: Error | undefined;
  #resolveReady!: () => void;
  #rejectReady!: (e: Error) => void;

  /** @internal */
  constructor(client: Client, resource: string, proof: string | undefined) {
    super();
    this.#client = client;
    this.resource = resource;
    this.proof = proof;
    this.ready = new Promise<void>((resolve, reject) => {
      this.#resolveReady = resolve;
      this.#rejectReady = reject;
    });
    this.ready.catch(() => {}); // also reported as "end"; not an unhandled rejection
  }

  /** etag is the last etag known for the resource (undefined if none yet). */
  get etag(): string | undefined {
    return this.#client._etag(this.resource);
  }

  /** ended reports whether the watch has ended. */
  get ended(): boolean {
    return this.#ended;
  }

  /** close stops watching and unsubscribes the queue from the resource. */
  async close(): Promise<void> {
    await this.#client._unwatch(this);
  }

  /** @internal */
  _subscribed(): void {
    this.#resolveReady();
  }

  /** @internal */
  _deliver(ev: WatchEvent): void {
    if (this.#ended) return;
    this.emit('event', ev);
    this.emit(ev.kind, ev);
  }

  /** @internal */
  _end(err?: Error): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#endErr = err;
    if (err) this.#rejectReady(err);
    else this.#resolveReady();
    this.emit('end', err);
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<WatchEvent> {
    const offs: (() => void)[] = [];
    const ch = new Channel<WatchEvent>(() => offs.forEach((f) => f()));
    if (this.#ended) {
      ch.end(this.#endErr);
      return ch;
    }
    offs.push(
      this.on('event', (ev) => ch.push(ev)),
      this.on('end', (err) => ch.end(err)),
    );
    return ch;
  }
}

interface ClientEvents {
  /** The state changed. */
  state: State;
  /** An INVITE or OVERFLOW arrived. */
  invite: ClientEvent;
  /** A stream or request failed and the client is recovering from it. */
  error: Error;
}

class Renew extends Error {}

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    const done = () => {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const t = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });

/** Client is one device's connection to meshgate. Create it with
 * createClient. It emits "state", "invite" and "error". */
export class Client extends Emitter<ClientEvents> {
  readonly #o: Required<Omit<ClientOptions, 'url' | 'urls' | 'storage' | 'webSocketImpl' | 'fetch' | 'token'>> & {
    storage: KeyValueStorage | undefined;
    webSocketImpl: unknown;
    fetch: FetchFn;
  };
  readonly #urls: string[];
  readonly #tokenFn: () => string | Promise<string>;
  readonly #closing = new AbortController();
  #urlIdx = 0;
  #token = '';
  #renewTimer: ReturnType<typeof setTimeout> | undefined;
  #state: State = 'connecting';
  #transport: Transport | undefined;
  #modeIdx = 0;
  #refusals = 0;
  #fallbackSince = 0;
  #stream: AbortController | undefined;
  #queue: string | undefined;
  #lastSeq = 0;
  #etags = new Map<string, string>(); // resource → last etag known
  #subscribed = new Set<string>(); // resources subscribed on #queue
  // For a resource whose watch was closed: #queue's last seq once it was
  // unsubscribed. Its notifications up to there, still unread, were
  // queued for the closed watch (#dispatch).
  #fences = new Map<string, number>();
  #watches = new Map<string, Watch>();
  #saved: Saved | undefined;
  #chain: Promise<unknown> = Promise.resolve();
  #persistChain: Promise<unknown> = Promise.resolve();
  #invites = new Set<Channel<ClientEvent>>();
  #loop: Promise<void>;
  #stats = { notifications: 0, duplicates: 0, reconnects: 0, queuesCreated: 0, resubscribes: 0, tokenRefreshes: 0, fallbacks: 0, changedWhileAway: 0, etagUnknown: 0 };

  /** @internal use createClient */
  constructor(opts: ClientOptions) {
    super();
    const urls = [...(opts.url ? [opts.url] : []), ...(opts.urls ?? [])];
    if (urls.length === 0) throw new TypeError('createClient: url or urls is required');
    if (!opts.token) throw new TypeError('createClient: token is required');
    this.#urls = urls;
    const tok = opts.token;
    this.#tokenFn = typeof tok === 'function' ? tok : () => tok;
    const f = opts.fetch ?? globalThis.fetch;
    this.#o = {
      storage: opts.storage,
      storageKey: opts.storageKey ?? 'meshgate',
      webSocketImpl: opts.webSocketImpl ?? (globalThis as { WebSocket?: unknown }).WebSocket,
      transports: opts.transports?.length ? [...opts.transports] : ['websocket', 'sse', 'poll'],
      queueTtlSeconds: opts.queueTtlSeconds ?? 300,
      minBackoffMs: opts.minBackoffMs ?? 100,
      maxBackoffMs: opts.maxBackoffMs ?? 10_000,
      renewBeforeMs: opts.renewBeforeMs ?? 60_000,
      refusalsBeforeFallback: opts.refusalsBeforeFallback ?? 2,
      retryPreferredAfterMs: opts.retryPreferredAfterMs ?? 60_000,
      pollWaitSeconds: opts.pollWaitSeconds ?? 25,
      fetch: (input, init) => f(input, init),
    };
    if (!this.#o.webSocketImpl) this.#o.transports = this.#o.transports.filter((t) => t !== 'websocket');
    this.#loop = this.#run();
  }

  /** state is what the client is doing now; "state" events report changes. */
  get state(): State {
    return this.#state;
  }

  /** transport is the transport in use (or last tried). */
  get transport(): Transport | undefined {
    return this.#transport;
  }

  /** queue is the name of the client's current queue, once it has one. */
  get queue(): string | undefined {
    return this.#queue;
  }

  /** lastSeq is the seq of the last notification handled. */
  get lastSeq(): number {
    return this.#lastSeq;
  }

  /** stats returns the client's counters. */
  stats(): Stats {
    return { ...this.#stats, transport: this.#transport, url: this.#url() };
  }

  /** watch subscribes to resource (proof goes to its publisher) and returns
   * its events. knownEtag is the version you hold (from a previous run): if
   * the resource is no longer at it, a CHANGED_WHILE_AWAY comes first.
   * Without it, the etag saved in storage (if any) is used. */
  watch(resource: string, opts: { proof?: string; knownEtag?: string } = {}): Watch {
    if (this.#closing.signal.aborted) throw new Error('meshgate: client closed');
    if (this.#watches.has(resource)) throw new Error(`meshgate: already watching ${resource}`);
    const w = new Watch(this, resource, opts.proof);
    this.#watches.set(resource, w);
    if (opts.knownEtag !== undefined && opts.knownEtag !== this.#etags.get(resource)) {
      this.#etags.set(resource, opts.knownEtag);
      this.#subscribed.delete(resource); // subscribe again, to compare
    }
    if (this.#queue) {
      void this.#serial(() => this.#subscribe(w)).catch((err: unknown) => this.#subscribeFailed(err));
    }
    return w;
  }

  /** invites iterates INVITE and OVERFLOW events from now on (also emitted
   * as "invite"). */
  invites(): AsyncIterableIterator<ClientEvent> {
    let off = () => {};
    const ch = new Channel<ClientEvent>(() => {
      off();
      this.#invites.delete(ch);
    });
    if (this.#closing.signal.aborted) ch.end();
    else {
      this.#invites.add(ch);
      off = this.on('invite', (ev) => ch.push(ev));
    }
    return ch;
  }

  /** close stops the client, deletes its queue and forgets the saved
   * state. Safe to call twice. */
  async close(): Promise<void> {
    if (this.#closing.signal.aborted) return this.#loop;
    this.#closing.abort();
    this.#stream?.abort();
    clearTimeout(this.#renewTimer);
    await this.#loop;
    await this.#chain.catch(() => {});
    const q = this.#queue;
    for (const w of this.#watches.values()) w._end();
    this.#watches.clear();
    for (const ch of this.#invites) ch.end();
    this.#setState('closed');
    await this.#persistChain.catch(() => {});
    if (this.#o.storage) await this.#o.storage.removeItem(this.#o.storageKey);
    if (q) {
      try {
        await post(this.#o.fetch, this.#url(), this.#token, ops.deleteQueue, { name: q }, AbortSignal.timeout(5000));
      } catch {
        // the queue expires with its lease
      }
    }
  }

  /** @internal */
  _etag(resource: string): string | undefined {
    return this.#etags.get(resource);
  }

  /** @internal */
  async _unwatch(w: Watch): Promise<void> {
    if (this.#watches.get(w.resource) !== w) return;
    this.#watches.delete(w.resource);
    w._end();
    const q = this.#queue;
    if (!q || !this.#subscribed.has(w.resource)) {
      // A subscribe of w may be on its way (on #serial): it undoes itself
      // when it lands (#subscribe). Resolve once it has.
      await this.#serial(async () => {});
      return;
    }
    this.#subscribed.delete(w.resource);
    this.#etags.delete(w.resource);
    this.#persist();
    await this.#serial(() => this.#unsubscribe(q, w.resource));
  }

  /** #unsubscribe unsubscribes q from resource; run it on #serial. */
  async #unsubscribe(q: string, resource: string): Promise<void> {
    try {
      const { renewQueue } = await this.#gql<UnsubscribeMutation>(ops.unsubscribe, { queue: q, resource });
      if (this.#queue === q && renewQueue.lastSeq > this.#lastSeq) this.#fences.set(resource, renewQueue.lastSeq);
    } catch {
      // its notifications are ignored until it is watched again
    }
  }

  #url(): string {
    return this.#urls[this.#urlIdx % this.#urls.length] as string;
  }

  #setState(s: State): void {
    if (this.#state === s || this.#state === 'closed') return;
    this.#state = s;
    this.emit('state', s);
  }

  /** #serial runs queue and subscription changes one at a time. */
  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.#chain.then(fn, fn);
    this.#chain = p.catch(() => {});
    return p;
  }

  #backoff(attempt: number): number {
    const cap = Math.min(this.#o.maxBackoffMs, this.#o.minBackoffMs * 2 ** Math.min(attempt, 16));
    return Math.random() * cap;
  }

  async #refreshToken(): Promise<void> {
    const t = await this.#tokenFn();
    if (this.#token !== '') this.#stats.tokenRefreshes++;
    this.#token = t;
    this.#scheduleRenewal();
  }

  /** #scheduleRenewal renews the token before it expires; a live stream is
   * then reopened with the new token and resumes after the last seq, so
   * nothing is lost. */
  #scheduleRenewal(): void {
    clearTimeout(this.#renewTimer);
    const exp = tokenExpiry(this.#token);
    if (exp === undefined || this.#closing.signal.aborted) return;
    const left = exp - Date.now();
    const wait = left > this.#o.renewBeforeMs ? left - this.#o.renewBeforeMs : Math.max(0, left / 2);
    this.#renewTimer = setTimeout(() => {
      this.#refreshToken().then(
        () => this.#stream?.abort(new Renew('token renewed')),
        (err: unknown) => {
          this.emit('error', err instanceof Error ? err : new Error(String(err)));
          if (!this.#closing.signal.aborted) this.#renewTimer = setTimeout(() => this.#scheduleRenewal(), 1000);
        },
      );
    }, wait);
  }

  /** #gql posts one operation to the current node, renewing the token once
   * if the gateway refuses it. */
  async #gql<T>(query: string, variables: object): Promise<T> {
    const signal = AbortSignal.any([this.#closing.signal, AbortSignal.timeout(15_000)]);
    try {
      return await post<T>(this.#o.fetch, this.#url(), this.#token, query, variables, signal);
    } catch (err) {
      if (!isCode(err, 'UNAUTHENTICATED')) throw err;
      await this.#refreshToken();
      return await post<T>(this.#o.fetch, this.#url(), this.#token, query, variables, signal);
    }
  }

  async #load(): Promise<void> {
    if (!this.#o.storage) return;
    const saved = parseSaved(await this.#o.storage.getItem(this.#o.storageKey));
    if (!saved) return;
    this.#saved = saved;
    for (const [r, e] of Object.entries(saved.etags)) if (!this.#etags.has(r)) this.#etags.set(r, e);
  }

  /** #persist saves the queue, last seq and etags, in order. */
  #persist(): void {
    const st = this.#o.storage;
    if (!st || !this.#queue || this.#closing.signal.aborted) return;
    const etags: Record<string, string> = {};
    for (const r of this.#subscribed) {
      const e = this.#etags.get(r);
      if (e !== undefined) etags[r] = e;
    }
    const v = JSON.stringify({ v: 1, queue: this.#queue, lastSeq: this.#lastSeq, etags } satisfies Saved);
    const key = this.#o.storageKey;
    this.#persistChain = this.#persistChain.then(() => st.setItem(key, v)).catch(() => {});
  }

  /** #ensureQueue makes sure the client has a live queue with every watch
   * subscribed: it renews the queue it knows (from this run or storage),
   * and when the gateway lost it (QUEUE_NOT_FOUND) makes a new one and
   * subscribes again, reporting what changed while away. */
  async #ensureQueue(): Promise<void> {
    if (!this.#queue && this.#saved) {
      this.#queue = this.#saved.queue;
      this.#lastSeq = this.#saved.lastSeq;
      for (const r of Object.keys(this.#saved.etags)) this.#subscribed.add(r);
      this.#saved = undefined;
    }
    if (this.#queue) {
      try {
        await this.#gql<RenewQueueMutation>(ops.renewQueue, { name: this.#queue });
      } catch (err) {
        if (!isCode(err, 'QUEUE_NOT_FOUND')) throw err;
        this.#queue = undefined;
      }
    }
    if (!this.#queue) {
      const { createQueue } = await this.#gql<CreateQueueMutation>(ops.createQueue, {
        ttl: this.#o.queueTtlSeconds,
      } satisfies CreateQueueMutationVariables);
      this.#stats.queuesCreated++;
      this.#queue = createQueue.name;
      this.#lastSeq = 0;
      this.#subscribed.clear();
      this.#fences.clear(); // seqs of the old queue
      this.#persist();
    }
    for (const w of [...this.#watches.values()]) {
      try {
        await this.#subscribe(w);
      } catch (err) {
        this.#subscribeFailed(err);
        if (err instanceof NetworkFailure || isCode(err, 'UNAVAILABLE') || isCode(err, 'QUEUE_NOT_FOUND')) throw err;
      }
    }
  }

  /** #subscribe subscribes the queue to w's resource unless it already is,
   * and reports a changed etag. A refusal (FORBIDDEN, …) ends the watch;
   * a failure of the node or network is thrown, and retried. */
  async #subscribe(w: Watch): Promise<void> {
    const q = this.#queue;
    if (!q || this.#watches.get(w.resource) !== w) return;
    if (this.#subscribed.has(w.resource)) return w._subscribed();
    const res = await this.#ask(q, w, null);
    if (!res || this.#queue !== q) return; // refused, or the queue was replaced meanwhile: its loop subscribes again
    if (this.#watches.get(w.resource) !== w) {
      // Invariant: a resource is subscribed on #queue only while it is
      // watched. w was closed while this subscribe was on its way, and
      // _unwatch found nothing to unsubscribe: undo it here, still on
      // #serial, so it lands before any later watch's subscribe.
      await this.#unsubscribe(q, w.resource);
      return;
    }
    const known = this.#etags.get(w.resource);
    const etag = res.etag;
    // '' means "never published": for a resource the client knew an etag
    // of, it is a publisher that forgot, not a change to report as one.
    const unknown = res.etagUnknown || (known !== undefined && known !== '' && etag === '');
    if (!unknown) this.#etags.set(w.resource, etag);
    const firstTime = !this.#subscribed.has(w.resource);
    this.#subscribed.add(w.resource);
    if (this.#stats.queuesCreated > 1 || known !== undefined) this.#stats.resubscribes++;
    this.#persist();
    w._subscribed();
    if (unknown && firstTime) {
      this.#stats.etagUnknown++;
      w._deliver({ kind: 'ETAG_UNKNOWN', resource: w.resource, etag: '', seq: 0, publishedAt: new Date().toISOString(), payload: null });
    } else if (!unknown && known !== undefined && known !== etag && firstTime) {
      this.#stats.changedWhileAway++;
      w._deliver({ kind: 'CHANGED_WHILE_AWAY', resource: w.resource, etag, seq: 0, publishedAt: new Date().toISOString(), payload: null });
    }
  }

  /** #ask subscribes q to w's resource, naming knownEtag (null: none),
   * and returns the answer without taking it. A refusal (FORBIDDEN, …)
   * ends the watch and returns undefined; a failure of the node or network
   * is thrown. */
  async #ask(q: string, w: Watch, knownEtag: string | null): Promise<SubscribeMutation['subscribe'] | undefined> {
    try {
      const res = await this.#gql<SubscribeMutation>(ops.subscribe, {
        queue: q,
        resource: w.resource,
        proof: w.proof ?? null,
        knownEtag,
      } satisfies SubscribeMutationVariables);
      return res.subscribe;
    } catch (err) {
      if (err instanceof MeshgateError && !['UNAVAILABLE', 'QUEUE_NOT_FOUND', 'UNAUTHENTICATED'].includes(err.code)) {
        this.#watches.delete(w.resource);
        w._end(err);
        return undefined;
      }
      throw err;
    }
  }

  /** #resubscribe subscribes the queue to w's resource again after an
   * OVERFLOW, without taking the answer. The notifications still queued
   * after the OVERFLOW are newer than those dropped but may be older than
   * the answer: a watch that took it would go back when it read them. So
   * it names the last etag it took (knownEtag); when the answer differs,
   * the gateway appends a RESYNC carrying it after everything queued, and
   * the watch reaches it by reading on. When the answer is that etag, the
   * watch is current. */
  async #resubscribe(w: Watch): Promise<void> {
    const q = this.#queue;
    if (!q || this.#watches.get(w.resource) !== w) return;
    if (!this.#subscribed.has(w.resource)) return this.#subscribe(w);
    let known = this.#etags.get(w.resource) ?? '';
    if (known === '') {
      // A watch that knows no etag has none to name, and the gateway
      // appends a RESYNC only for a knownEtag. A resource never published
      // had nothing dropped; for one that was, name an etag no publisher
      // made, which the answer differs from.
      const res = await this.#ask(q, w, null);
      if (!res) return;
      if (res.etag === '' && !res.etagUnknown) {
        this.#stats.resubscribes++;
        return;
      }
      known = noEtag();
    }
    if (await this.#ask(q, w, known)) this.#stats.resubscribes++;
  }

  /** #afterOverflow runs #resubscribe for w after an OVERFLOW.
   * Invariant: after an OVERFLOW every watch is subscribed again naming its
   * etag, or stops watching: the RESYNC that subscribe queues is all that
   * brings back a resource whose changes were dropped. So a failure of the
   * node or network is retried, with backoff, until it works or the watch,
   * its queue or the client is gone. A refusal ends the watch (#ask); a
   * lost queue is made again by the loop, which subscribes every watch. */
  async #afterOverflow(w: Watch): Promise<void> {
    const q = this.#queue;
    for (let attempt = 0; ; attempt++) {
      try {
        await this.#serial(() => this.#resubscribe(w));
        return;
      } catch (err) {
        this.#subscribeFailed(err);
        if (err instanceof MeshgateError && err.code !== 'UNAVAILABLE') return;
      }
      await sleep(this.#backoff(attempt), this.#closing.signal);
      if (this.#closing.signal.aborted || this.#queue !== q || this.#watches.get(w.resource) !== w) return;
    }
  }

  #subscribeFailed(err: unknown): void {
    // A lost queue or node: the loop re-checks the queue on the next connection.
    if (isCode(err, 'QUEUE_NOT_FOUND')) this.#stream?.abort();
    this.emit('error', err instanceof Error ? err : new Error(String(err)));
  }

  /** #dispatch hands one notification to its watch, once: a seq not above
   * the last one handled is a duplicate (a replay after a reconnection). */
  #dispatch(n: Notification): void {
    if (n.seq <= this.#lastSeq) {
      this.#stats.duplicates++;
      return;
    }
    this.#lastSeq = n.seq;
    this.#stats.notifications++;
    const resource = n.resource ?? '';
    switch (n.kind) {
      case 'INVITE':
      case 'OVERFLOW': {
        const ev: ClientEvent = { kind: n.kind, seq: n.seq, publishedAt: n.publishedAt, payload: n.payload };
        if (n.from) ev.from = `${n.from.user}/${n.from.device}`;
        this.emit('invite', ev);
        if (n.kind === 'OVERFLOW') {
          // Some notifications are gone: subscribe again (#resubscribe).
          for (const w of [...this.#watches.values()]) void this.#afterOverflow(w);
        }
        break;
      }
      case 'CHANGED':
      case 'RESYNC':
      case 'REVOKED': {
        // Invariant: a watch sees no notification queued before its
        // subscribe answered, and a closed one leaves no etag behind. One
        // for a resource neither watched nor subscribed, or at or below
        // its fence, was queued for a closed watch, before it was
        // unsubscribed: it may be older than what a new watch's subscribe
        // answered.
        if (!this.#watches.has(resource) && !this.#subscribed.has(resource)) break;
        const fence = this.#fences.get(resource);
        if (fence !== undefined && n.seq <= fence) break;
        this.#fences.delete(resource);
        // A RESYNC flagged etagUnknown: its '' is not "never published".
        const unknown = n.kind === 'RESYNC' && n.etagUnknown;
        if (n.kind !== 'REVOKED' && n.etag != null && !unknown) this.#etags.set(resource, n.etag);
        const w = this.#watches.get(resource);
        if (unknown && w) this.#stats.etagUnknown++;
        w?._deliver({ kind: unknown ? 'ETAG_UNKNOWN' : n.kind, resource, etag: unknown ? '' : (n.etag ?? ''), seq: n.seq, publishedAt: n.publishedAt, payload: n.payload });
        if (n.kind === 'REVOKED') {
          this.#subscribed.delete(resource);
          this.#etags.delete(resource);
          if (w) {
            this.#watches.delete(resource);
            w._end();
          }
        }
        break;
      }
    }
    this.#persist();
  }

  #pickTransport(): Transport {
    const ts = this.#o.transports;
    if (this.#modeIdx > 0 && Date.now() - this.#fallbackSince > this.#o.retryPreferredAfterMs) {
      this.#modeIdx = 0; // try the preferred transport again now and then
      this.#refusals = 0;
    }
    return ts[Math.min(this.#modeIdx, ts.length - 1)] as Transport;
  }

  /** #run keeps the queue read until close(). */
  async #run(): Promise<void> {
    const closing = this.#closing.signal;
    try {
      await this.#load();
    } catch (err) {
      this.emit('error', err instanceof Error ? err : new Error(String(err)));
    }
    let attempt = 0;
    while (!closing.aborted) {
      const started = Date.now();
      let err: unknown;
      const stream = new AbortController();
      this.#stream = stream;
      try {
        if (this.#token === '') await this.#refreshToken();
        await this.#serial(() => this.#ensureQueue());
        const t = this.#pickTransport();
        this.#transport = t;
        const run = t === 'websocket' ? websocket : t === 'sse' ? sse : poll;
        const session: Session = {
          url: this.#url(),
          token: () => this.#token,
          queue: this.#queue as string,
          after: () => this.#lastSeq,
          onOpen: () => {
            this.#refusals = 0;
            attempt = 0;
            this.#setState(t === 'poll' ? 'polling' : 'live');
          },
          onNotification: (n) => this.#dispatch(n),
          signal: AbortSignal.any([closing, stream.signal]),
          fetchFn: this.#o.fetch,
          webSocketImpl: this.#o.webSocketImpl,
          pollWaitSeconds: this.#o.pollWaitSeconds,
          pollPeriodMs: this.#o.retryPreferredAfterMs,
        };
        if (!stream.signal.aborted) await run(session);
      } catch (e) {
        err = e;
      }
      if (closing.aborted) break;
      if (Date.now() - started > 5000) attempt = 0; // it ran a while: start the backoff over
      if (stream.signal.reason instanceof Renew) continue; // reopen with the new token, resume
      if (err === undefined && !stream.signal.aborted) continue; // a poll period ended: try the preferred transport
      this.#stats.reconnects++;
      this.#setState('recovering');
      if (err !== undefined) this.emit('error', err instanceof Error ? err : new Error(String(err)));
      if (err instanceof Refused) {
        if (++this.#refusals >= this.#o.refusalsBeforeFallback && this.#modeIdx < this.#o.transports.length - 1) {
          this.#modeIdx++;
          this.#refusals = 0;
          this.#fallbackSince = Date.now();
          this.#stats.fallbacks++;
        }
        await sleep(this.#backoff(0), closing);
        continue;
      }
      if (isCode(err, 'QUEUE_NOT_FOUND')) {
        // The node holding the queue died: #ensureQueue makes a new one.
        await sleep(this.#backoff(attempt++), closing);
        continue;
      }
      if (isCode(err, 'UNAUTHENTICATED') || isCode(err, 'FORBIDDEN')) {
        try {
          await this.#refreshToken();
        } catch (e) {
          this.emit('error', e instanceof Error ? e : new Error(String(e)));
        }
        await sleep(this.#backoff(attempt++), closing);
        continue;
      }
      if (err !== undefined) this.#urlIdx++; // another node, after a pause
      await sleep(this.#backoff(attempt++), closing);
    }
    clearTimeout(this.#renewTimer);
  }
}

/** noEtag is an etag no publisher made: 128 random bits. */
function noEtag(): string {
  const b = crypto.getRandomValues(new Uint8Array(16));
  return 'meshgate-client-none-' + Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

/** createClient connects to meshgate as the device the token names. It
 * returns at once; the client makes (or resumes) its queue and streams in
 * the background, and reports its progress with "state" events. */
export function createClient(opts: ClientOptions): Client {
  return new Client(opts);
}

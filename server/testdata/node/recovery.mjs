// A Node client on graphql-ws doing what the Go SDK does, without an SDK:
// see client/OTHER-LANGUAGES.md. Run by client/node_test.go.
//
//   MESHGATE_URL=https://localhost:8443/graphql MESHGATE_TOKEN=… \
//     NODE_EXTRA_CA_CERTS=meshgate-data/tls-cert.pem node recovery.mjs user:alice/notes
//
// Prints one JSON line per event: {"kind","resource","etag","seq","queue"}.
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

const url = process.env.MESHGATE_URL;
const auth = `Bearer ${process.env.MESHGATE_TOKEN}`;
const resources = process.argv.slice(2);

async function gql(query, variables) {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: auth },
    body: JSON.stringify({ query, variables }),
  });
  const body = await res.json();
  if (body.errors) {
    const e = new Error(body.errors[0].message);
    e.code = body.errors[0].extensions?.code;
    throw e;
  }
  return body.data;
}

// What the client knows, kept across reconnections and new queues.
let queue = null;
let lastSeq = 0;
const etags = new Map(); // resource → last known etag

const print = (o) => console.log(JSON.stringify({ ...o, queue }));

// 1. A queue, and every resource subscribed. On a new queue, compare each
// resource's etag with the one we knew: a difference is a change we missed.
// etagUnknown, or "" for a resource we knew an etag of (a publisher that
// forgot its versions), means nobody knows the current version: fetch the
// resource from its source, and keep the etag we knew rather than "".
async function newQueue() {
  ({ createQueue: { name: queue } } = await gql('mutation { createQueue(ttlSeconds: 300) { name } }'));
  lastSeq = 0;
  for (const r of resources) {
    const { subscribe } = await gql(
      'mutation($q: String!, $r: String!) { subscribe(queue: $q, resource: $r) { etag etagUnknown } }', { q: queue, r });
    const known = etags.get(r);
    if (subscribe.etagUnknown || (known !== undefined && known !== '' && subscribe.etag === '')) {
      print({ kind: 'ETAG_UNKNOWN', resource: r, etag: '' });
      continue;
    }
    if (known !== undefined && known !== subscribe.etag) {
      print({ kind: 'CHANGED_WHILE_AWAY', resource: r, etag: subscribe.etag });
    }
    etags.set(r, subscribe.etag);
  }
  print({ kind: 'READY' });
}

// A failure of a node or the network (not a refusal: an error with another
// code) is tried again, with backoff and jitter.
const backoff = (n) => new Promise((r) => setTimeout(r, Math.random() * Math.min(10000, 100 * 2 ** n)));
async function gqlRetried(query, variables) {
  for (let n = 0; ; n++) {
    try {
      return await gql(query, variables);
    } catch (e) {
      if (e.code && e.code !== 'UNAVAILABLE') throw e;
      await backoff(n);
    }
  }
}

// 2. OVERFLOW: some notifications were dropped. Subscribe again naming the
// last etag applied, and take nothing from the answer: what is still
// queued is newer than what was dropped but may be older than the answer.
// When the answer differs, the gateway queues a RESYNC carrying it after
// all that, and reading on brings us to it. A resource of which we know no
// etag: none if it was never published, else an etag no publisher made.
// A failed subscribe is made again: its RESYNC is all that brings back a
// resource whose every change was dropped.
async function resubscribe() {
  const sub = 'mutation($q: String!, $r: String!, $k: String) { subscribe(queue: $q, resource: $r, knownEtag: $k) { etag etagUnknown } }';
  for (const r of resources) {
    let known = etags.get(r) ?? '';
    if (known === '') {
      const { subscribe } = await gqlRetried(sub, { q: queue, r, k: null });
      if (subscribe.etag === '' && !subscribe.etagUnknown) continue; // never published: nothing was dropped
      known = `meshgate-client-none-${Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, '0')).join('')}`;
    }
    await gqlRetried(sub, { q: queue, r, k: known });
  }
}

// 3. Stream with graphql-ws, resuming after the last seq seen; skip any seq
// already seen. A RESYNC flagged etagUnknown says nobody knows the
// version (its "" is not "never published"): fetch the resource from its
// source, and keep the etag we knew. On QUEUE_NOT_FOUND make a new queue;
// on anything else (a node going away: close 1001, a network error)
// reconnect with backoff and jitter, to the same URL or another node's.
const client = createClient({
  url: url.replace(/^http/, 'ws'),
  webSocketImpl: WebSocket,
  connectionParams: () => ({ authorization: auth }), // a function: a fresh token each connection
  retryAttempts: Infinity,
  shouldRetry: () => true,
  retryWait: backoff,
});

async function stream() {
  for (;;) {
    try {
      const it = client.iterate({
        query: `subscription($q: String!, $a: Seq) { notifications(queue: $q, after: $a) { seq kind resource etag etagUnknown } }`,
        variables: { q: queue, a: lastSeq },
      });
      for await (const { data, errors } of it) {
        if (errors) throw Object.assign(new Error(errors[0].message), { code: errors[0].extensions?.code });
        const n = data.notifications;
        if (n.seq <= lastSeq) continue; // seen already
        lastSeq = n.seq;
        if (n.kind === 'RESYNC' && n.etagUnknown) {
          print({ seq: n.seq, kind: 'ETAG_UNKNOWN', resource: n.resource, etag: '' });
          continue;
        }
        if (n.kind === 'CHANGED' || n.kind === 'RESYNC') etags.set(n.resource, n.etag);
        print(n);
        if (n.kind === 'OVERFLOW') await resubscribe(); // some are gone (2.)
      }
    } catch (e) {
      const code = e.code ?? (Array.isArray(e) ? e[0]?.extensions?.code : undefined);
      if (code === 'QUEUE_NOT_FOUND') await newQueue(); // the node holding it died
      else await new Promise((r) => setTimeout(r, 200));
    }
  }
}

await newQueue();
await stream();

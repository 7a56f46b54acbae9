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
async function newQueue() {
  ({ createQueue: { name: queue } } = await gql('mutation { createQueue(ttlSeconds: 300) { name } }'));
  lastSeq = 0;
  for (const r of resources) {
    const { subscribe } = await gql(
      'mutation($q: String!, $r: String!) { subscribe(queue: $q, resource: $r) { etag } }', { q: queue, r });
    const known = etags.get(r);
    if (known !== undefined && known !== subscribe.etag) {
      print({ kind: 'CHANGED_WHILE_AWAY', resource: r, etag: subscribe.etag });
    }
    etags.set(r, subscribe.etag);
  }
  print({ kind: 'READY' });
}

// 2. Stream with graphql-ws, resuming after the last seq seen; skip any seq
// already seen. On QUEUE_NOT_FOUND make a new queue; on anything else
// (a node going away: close 1001, a network error) reconnect with backoff
// and jitter, to the same URL or another node's.
const client = createClient({
  url: url.replace(/^http/, 'ws'),
  webSocketImpl: WebSocket,
  connectionParams: () => ({ authorization: auth }), // a function: a fresh token each connection
  retryAttempts: Infinity,
  shouldRetry: () => true,
  retryWait: async (n) => new Promise((r) => setTimeout(r, Math.random() * Math.min(10000, 100 * 2 ** n))),
});

async function stream() {
  for (;;) {
    try {
      const it = client.iterate({
        query: `subscription($q: String!, $a: Seq) { notifications(queue: $q, after: $a) { seq kind resource etag } }`,
        variables: { q: queue, a: lastSeq },
      });
      for await (const { data, errors } of it) {
        if (errors) throw Object.assign(new Error(errors[0].message), { code: errors[0].extensions?.code });
        const n = data.notifications;
        if (n.seq <= lastSeq) continue; // seen already
        lastSeq = n.seq;
        if (n.kind === 'CHANGED' || n.kind === 'RESYNC') etags.set(n.resource, n.etag);
        if (n.kind === 'OVERFLOW') { await newQueue(); continue; } // some are gone: compare etags again
        print(n);
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

// Reference-client conformance for meshgate, run by server/node_test.go.
//
//   node conformance.mjs http   graphql-http's serverAudits (GraphQL over HTTP)
//   node conformance.mjs ws     the graphql-ws client (graphql-transport-ws)
//
// Env: MESHGATE_URL (https://…/graphql), MESHGATE_TOKEN (publish scope),
// NODE_EXTRA_CA_CERTS (the gateway's self-signed certificate).
import assert from 'node:assert/strict';
import { serverAudits } from 'graphql-http';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

const url = process.env.MESHGATE_URL;
const token = process.env.MESHGATE_TOKEN;
const auth = `Bearer ${token}`;
const wsUrl = url.replace(/^http/, 'ws');

async function gql(query, variables) {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: auth },
    body: JSON.stringify({ query, variables }),
  });
  const body = await res.json();
  if (body.errors) throw new Error(`${query}: ${JSON.stringify(body.errors)}`);
  return body.data;
}

async function httpAudits() {
  // Every request carries the token: meshgate serves nothing anonymously.
  const fetchFn = (input, init = {}) => {
    const headers = new Headers(init.headers);
    headers.set('authorization', auth);
    return fetch(input, { ...init, headers });
  };
  let failed = 0;
  for (const audit of serverAudits({ url, fetchFn })) {
    const result = await audit.fn();
    const line = `${result.status.toUpperCase()} ${audit.id} ${audit.name}`;
    // MUST audits are errors when they fail; SHOULD and MAY are warnings.
    if (result.status === 'error') {
      failed++;
      console.log(line, '-', result.reason);
    } else {
      console.log(line, result.status === 'ok' ? '' : `- ${result.reason}`);
    }
  }
  if (failed) throw new Error(`${failed} MUST audit(s) failed`);
}

function client(opts = {}) {
  return createClient({
    url: wsUrl,
    webSocketImpl: WebSocket,
    retryAttempts: 0,
    lazy: true,
    connectionParams: { authorization: auth },
    ...opts,
  });
}

const streamQuery = `subscription($q: String!, $a: Seq) { notifications(queue: $q, after: $a) { seq kind resource etag payload } }`;

async function take(iter, n) {
  const out = [];
  for (let i = 0; i < n; i++) {
    const { value, done } = await iter.next();
    assert.equal(done, false, `stream ended after ${i} items`);
    out.push(value);
  }
  return out;
}

async function ws() {
  const { createQueue: { name: q } } = await gql('mutation { createQueue { name } }');
  const me = (await gql('{ me { user } }')).me.user;
  const res = `user:${me}/node`;
  await gql('mutation($q:String!,$r:String!){ subscribe(queue:$q, resource:$r) { etag } }', { q, r: res });
  for (let i = 1; i <= 3; i++) {
    await gql('mutation($r:String!,$e:String!,$p:JSON){ publish(resource:$r, etag:$e, payload:$p) }', { r: res, e: `e${i}`, p: { i } });
  }

  // Replay after seq 1, then live, with ping/pong keep-alives running.
  let pongs = 0;
  const c = client({ keepAlive: 50, on: { pong: () => pongs++ } });
  const iter = c.iterate({ query: streamQuery, variables: { q, a: 1 } });
  const replay = await take(iter, 2);
  assert.deepEqual(replay.map((r) => r.data.notifications.seq), [2, 3]);
  await gql('mutation($r:String!){ publish(resource:$r, etag:"e4", payload:{live:true}) }', { r: res });
  const [live] = await take(iter, 1);
  assert.deepEqual(live.data.notifications, { seq: 4, kind: 'CHANGED', resource: res, etag: 'e4', payload: { live: true } });
  await new Promise((r) => setTimeout(r, 200));
  assert.ok(pongs > 0, 'server answered no ping');
  console.log('ok replay, live push and ping/pong');

  // A query over the socket: one result, then complete.
  const results = [];
  for await (const r of c.iterate({ query: '{ me { user device } }' })) results.push(r);
  assert.equal(results.length, 1);
  assert.equal(results[0].data.me.user, me);
  console.log('ok query over WebSocket completes');

  // Validation errors reach the sink as an error, with codes.
  await assert.rejects(
    (async () => { for await (const _ of c.iterate({ query: 'subscription { nope }' })) { /* none */ } })(),
    (errs) => Array.isArray(errs) && errs[0].extensions.code === 'GRAPHQL_VALIDATION_FAILED',
  );
  console.log('ok validation error');

  // The queue going away ends the stream with a typed error.
  await gql('mutation($q:String!){ deleteQueue(name:$q) }', { q });
  await assert.rejects(
    (async () => { for (;;) { const { done } = await iter.next(); if (done) break; } })(),
    (errs) => Array.isArray(errs) && errs[0].extensions.code === 'QUEUE_NOT_FOUND',
  );
  console.log('ok QUEUE_NOT_FOUND ends the stream');
  await c.dispose();

  // A bad token closes the socket with 4403.
  const closed = new Promise((resolve) => {
    const bad = client({ lazy: false, connectionParams: { authorization: 'Bearer nope' }, on: { closed: (e) => resolve(e.code) }, onNonLazyError: () => {} });
    setTimeout(() => bad.dispose(), 5000);
  });
  assert.equal(await closed, 4403);
  console.log('ok bad token closes with 4403');
}

const mode = process.argv[2];
try {
  if (mode === 'http') await httpAudits();
  else if (mode === 'ws') await ws();
  else throw new Error(`unknown mode ${mode}`);
  console.log('PASS');
  process.exit(0);
} catch (err) {
  console.error('FAIL', err);
  process.exit(1);
}

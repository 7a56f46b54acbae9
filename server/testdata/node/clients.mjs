// The client libraries people already use, unmodified and with their
// default settings, against a live meshgate. Run by server/node_test.go
// (TestNodeClients), one mode per process:
//
//   node clients.mjs graphql-sse   graphql-sse's client (distinct connections mode)
//   node clients.mjs eventsource   the `eventsource` package: errors in the stream, Last-Event-ID resume
//   node clients.mjs urql          @urql/core's fetchExchange: its default Accept, queries and subscriptions
//   node clients.mjs apollo-http   @apollo/client's HttpLink: multipart HTTP subscriptions
//   node clients.mjs apollo-ws     @apollo/client's GraphQLWsLink (graphql-ws)
//   node clients.mjs legacy        subscriptions-transport-ws, idle past the old cut-off
//   node clients.mjs chromium      a browser EventSource that loses its connection and resumes
//
// Env: MESHGATE_URL (https://localhost:port/graphql), MESHGATE_TOKEN
// (publish scope), NODE_EXTRA_CA_CERTS (the gateway's certificate),
// MESHGATE_IDLE_MS (how long the idle checks wait), CHROMIUM (the browser).
import assert from 'node:assert/strict';
import net from 'node:net';

const url = process.env.MESHGATE_URL;
const auth = `Bearer ${process.env.MESHGATE_TOKEN}`;
const wsUrl = url.replace(/^http/, 'ws');
const idleMs = Number(process.env.MESHGATE_IDLE_MS || 1000);

const streamQuery = 'subscription($q: String!, $a: Seq) { notifications(queue: $q, after: $a) { seq kind resource etag payload } }';

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

// setup creates a queue subscribed to one resource of the caller's own.
async function setup(name) {
  const { createQueue: { name: q } } = await gql('mutation { createQueue { name } }');
  const me = (await gql('{ me { user } }')).me.user;
  const res = `user:${me}/${name}`;
  await gql('mutation($q:String!,$r:String!){ subscribe(queue:$q, resource:$r) { etag } }', { q, r: res });
  return { q, res };
}

let etagN = 0;
const publish = (res, p) => gql('mutation($r:String!,$e:String!,$p:JSON){ publish(resource:$r, etag:$e, payload:$p) }', { r: res, e: `e${++etagN}`, p });

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// waitFor polls cond until it holds or the deadline passes.
async function waitFor(what, cond, ms = 20000) {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

const code = (errs) => errs?.[0]?.extensions?.code;

// proxy is a TCP relay to the gateway that the test can cut: every
// connection through it is destroyed at once, as a network drop would.
async function proxy() {
  const target = new URL(url);
  const socks = new Set();
  const srv = net.createServer((down) => {
    const up = net.connect(Number(target.port), target.hostname);
    for (const s of [down, up]) {
      socks.add(s);
      s.on('error', () => {});
      s.on('close', () => { socks.delete(s); down.destroy(); up.destroy(); });
    }
    down.pipe(up);
    up.pipe(down);
  });
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  const u = new URL(url);
  u.port = String(srv.address().port);
  let cuts = 0;
  return {
    url: u.toString(),
    cut() { cuts++; for (const s of socks) s.destroy(); },
    get cuts() { return cuts; },
    close() { for (const s of socks) s.destroy(); srv.close(); },
  };
}

// graphql-sse PROTOCOL.md, distinct connections mode: "Validation steps
// that run before execution of the GraphQL operation MUST report errors
// through an accepted SSE connection by emitting `next` events that
// contain the errors in the data field." and "After all results have been
// emitted, the `complete` event will follow indicating stream completion."
async function graphqlSSE() {
  const { createClient } = await import('graphql-sse');
  const client = createClient({ url, headers: { authorization: auth } });
  const all = async (req) => { const out = []; for await (const r of client.iterate(req)) out.push(r); return out; };

  // A validation error: one `next` with the error's code, then complete.
  let res = await all({ query: 'subscription { nope }' });
  assert.equal(res.length, 1, JSON.stringify(res));
  assert.equal(code(res[0].errors), 'GRAPHQL_VALIDATION_FAILED');
  console.log('ok validation error arrives as next {errors} + complete');

  // A syntax error likewise.
  res = await all({ query: 'subscription {' });
  assert.equal(code(res[0].errors), 'GRAPHQL_PARSE_FAILED');
  console.log('ok parse error in the stream');

  // A queue that does not exist: QUEUE_NOT_FOUND visible to the application.
  res = await all({ query: streamQuery, variables: { q: 'no-such-queue' } });
  assert.equal(res.length, 1, JSON.stringify(res));
  assert.equal(code(res[0].errors), 'QUEUE_NOT_FOUND');
  console.log('ok QUEUE_NOT_FOUND arrives in the stream');

  // Subscribe, receive, and the queue going away ends it with a code.
  const { q, res: r } = await setup('sse');
  await publish(r, { i: 1 });
  const got = [];
  const done = (async () => { for await (const v of client.iterate({ query: streamQuery, variables: { q } })) got.push(v); })();
  await waitFor('the first notification', () => got.length >= 1);
  assert.equal(got[0].data.notifications.seq, 1);
  await gql('mutation($q:String!){ deleteQueue(name:$q) }', { q });
  await done;
  assert.equal(code(got.at(-1).errors), 'QUEUE_NOT_FOUND');
  console.log('ok subscribe, receive, QUEUE_NOT_FOUND ends the stream');

  // Only a bad token refuses the request: 401, which the client reports.
  const bad = createClient({ url, headers: { authorization: 'Bearer nope' }, retryAttempts: 0 });
  await assert.rejects((async () => {
    for await (const _ of bad.iterate({ query: streamQuery, variables: { q } })) { /* none */ }
  })(), (err) => /401/.test(String(err?.message ?? err)));
  console.log('ok a bad token is refused with 401');
  client.dispose();
}

// The `eventsource` package: an EventSource as browsers have it, with the
// token in extensions (EventSource cannot set headers).
async function eventSource() {
  const { EventSource } = await import('eventsource');
  const sseURL = (u, query, variables, extra = '') => `${u}?query=${encodeURIComponent(query)}&variables=${encodeURIComponent(JSON.stringify(variables || {}))}&extensions=${encodeURIComponent(JSON.stringify({ authorization: auth }))}${extra}`;

  // A validation error: a next event with the code, then complete; no
  // "Non-200 status code" error.
  await new Promise((resolve, reject) => {
    const es = new EventSource(sseURL(url, 'subscription { nope }'));
    let data;
    es.addEventListener('next', (e) => { data = JSON.parse(e.data); });
    es.addEventListener('complete', () => {
      es.close();
      try { assert.equal(code(data?.errors), 'GRAPHQL_VALIDATION_FAILED'); resolve(); } catch (err) { reject(err); }
    });
    es.onerror = (e) => { es.close(); reject(new Error(`EventSource error: ${e.message || e.code}`)); };
  });
  console.log('ok EventSource sees the validation error in the stream');

  // Resume: the stream is cut twice while notifications are published; the
  // EventSource reconnects by itself with Last-Event-ID and gets every seq
  // once, in order.
  const { q, res } = await setup('es');
  const px = await proxy();
  const seqs = [];
  const es = new EventSource(sseURL(px.url, streamQuery, { q }));
  let ids = [];
  es.addEventListener('next', (e) => { seqs.push(JSON.parse(e.data).data.notifications.seq); ids.push(e.lastEventId); });
  es.onerror = () => {}; // reconnecting
  const total = 12;
  for (let i = 1; i <= total; i++) {
    await publish(res, { i });
    if (i % 4 === 0) {
      await waitFor(`seq ${i - 2}`, () => seqs.length >= i - 2);
      px.cut();
    }
  }
  await waitFor(`all ${total} notifications`, () => seqs.length >= total);
  await sleep(100);
  es.close();
  px.close();
  assert.deepEqual(seqs, Array.from({ length: total }, (_, i) => i + 1), 'a gap or a duplicate');
  assert.deepEqual(ids, seqs.map(String), 'each notification event carries id: <seq>');
  console.log(`ok EventSource resumed after ${px.cuts} cuts with no gap and no duplicate`);
}

// urql's default Accept for queries and mutations is
// "application/graphql-response+json, application/graphql+json,
// application/json, text/event-stream, multipart/mixed": they must come
// back as JSON. Subscriptions over fetch (fetchSubscriptions) take SSE.
async function urql() {
  const { Client, fetchExchange } = await import('@urql/core');
  const client = new Client({ url, exchanges: [fetchExchange], fetchOptions: { headers: { authorization: auth } }, fetchSubscriptions: true });
  const me = await client.query('{ me { user } }', {}).toPromise();
  assert.equal(me.error, undefined, String(me.error));
  assert.ok(me.data.me.user);
  const { q, res } = await setup('urql');
  const m = await client.mutation('mutation($r:String!,$p:JSON){ publish(resource:$r, etag:"u1", payload:$p) }', { r: res, p: { i: 1 } }).toPromise();
  assert.equal(m.error, undefined, String(m.error));
  assert.equal(m.data.publish, 1);
  console.log('ok urql query and mutation with its default Accept');

  const got = [];
  const sub = client.subscription(streamQuery, { q }).subscribe((r) => got.push(r));
  await waitFor('the first notification', () => got.length >= 1);
  assert.equal(got[0].data.notifications.seq, 1);
  await publish(res, { i: 2 });
  await waitFor('the live notification', () => got.length >= 2);
  assert.equal(got[1].data.notifications.seq, 2);
  sub.unsubscribe();
  const errs = [];
  const sub2 = client.subscription(streamQuery, { q: 'no-such-queue' }).subscribe((r) => errs.push(r));
  await waitFor('the error', () => errs.length >= 1);
  sub2.unsubscribe();
  assert.equal(errs[0].error.graphQLErrors[0].extensions.code, 'QUEUE_NOT_FOUND');
  console.log('ok urql subscription over fetch: receive, unsubscribe, QUEUE_NOT_FOUND');
}

// Apollo's multipart HTTP subscriptions: HttpLink sends
// `Accept: multipart/mixed;boundary=graphql;subscriptionSpec=1.0, …` and
// reads `payload` parts, skipping `{}` heartbeats.
async function apolloHTTP() {
  const { ApolloClient, InMemoryCache, HttpLink, gql: tag } = await import('@apollo/client');
  const client = new ApolloClient({ link: new HttpLink({ uri: url, headers: { authorization: auth } }), cache: new InMemoryCache() });
  const me = await client.query({ query: tag`{ me { user } }` });
  assert.ok(me.data.me.user);
  const { q, res } = await setup('apollo');
  await publish(res, { i: 1 });
  const got = [];
  let completed = false;
  let failed;
  const sub = client.subscribe({ query: tag(streamQuery), variables: { q } }).subscribe({
    next: (r) => got.push(r),
    error: (e) => { failed = e; },
    complete: () => { completed = true; },
  });
  await waitFor('the first notification', () => got.length >= 1 || failed);
  assert.equal(failed, undefined, String(failed));
  assert.equal(got[0].data.notifications.seq, 1);
  await sleep(idleMs); // heartbeats flow meanwhile
  await publish(res, { i: 2 });
  await waitFor('the live notification', () => got.length >= 2 || failed);
  assert.equal(got[1].data.notifications.seq, 2);
  assert.equal(failed, undefined, String(failed));
  sub.unsubscribe();
  console.log('ok Apollo multipart subscription: receive after idle, unsubscribe');

  // Errors in the stream, with the code visible.
  const errs = [];
  await new Promise((resolve) => {
    client.subscribe({ query: tag(streamQuery), variables: { q: 'no-such-queue' } }).subscribe({
      next: (r) => { errs.push(r.error); },
      error: (e) => { errs.push(e); resolve(); },
      complete: resolve,
    });
  });
  const e = errs.find(Boolean);
  assert.ok(e, 'no error reported');
  assert.equal(e.errors?.[0]?.extensions?.code, 'QUEUE_NOT_FOUND', String(e));
  console.log('ok Apollo multipart: QUEUE_NOT_FOUND in the stream');
  assert.equal(completed, false);
}

const modes = { 'graphql-sse': graphqlSSE, eventsource: eventSource, urql, 'apollo-http': apolloHTTP };
const mode = process.argv[2];
process.on('unhandledRejection', (err) => { console.error('FAIL unhandled rejection', err); process.exit(1); });
try {
  if (!modes[mode]) throw new Error(`unknown mode ${mode}`);
  await modes[mode]();
  console.log('PASS');
  process.exit(0);
} catch (err) {
  console.error('FAIL', err);
  process.exit(1);
}

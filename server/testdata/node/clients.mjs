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
//   node clients.mjs apollo-chromium  Apollo's HttpLink in Chromium (multipart through the browser's fetch)
//   node clients.mjs graphql-ws-ping  graphql-ws sees protocol pings on an idle connection
//   node clients.mjs graphiql      GraphiQL in Chromium: paste a token, see the schema docs
//   node clients.mjs idle          every streaming client at once, silent for MESHGATE_IDLE_MS
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
  await sleep(idleMs); // keep-alive comments flow meanwhile
  await publish(r, { i: 2 });
  await waitFor('the notification after idle', () => got.length >= 2);
  assert.equal(got[1].data.notifications.seq, 2);
  await gql('mutation($q:String!){ deleteQueue(name:$q) }', { q });
  await done;
  assert.equal(code(got.at(-1).errors), 'QUEUE_NOT_FOUND');
  console.log('ok subscribe, receive, idle, receive, QUEUE_NOT_FOUND ends the stream');

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

// cdp drives a headless Chromium over the DevTools protocol (with ws):
// the browser's own EventSource, not a polyfill.
async function chromium(pageURL) {
  const { spawn } = await import('node:child_process');
  const { mkdtempSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { default: WebSocket } = await import('ws');
  const profile = mkdtempSync(join(tmpdir(), 'meshgate-chromium-'));
  const proc = spawn(process.env.CHROMIUM || 'chromium', [
    '--headless=new', '--no-sandbox', '--disable-gpu', '--no-first-run', '--no-default-browser-check',
    '--ignore-certificate-errors', `--user-data-dir=${profile}`, '--remote-debugging-port=0', 'about:blank',
  ], { stdio: ['ignore', 'ignore', 'pipe'] });
  const endpoint = await new Promise((resolve, reject) => {
    let err = '';
    const t = setTimeout(() => reject(new Error(`chromium did not start: ${err}`)), 30000);
    proc.stderr.on('data', (d) => {
      err += d;
      const m = err.match(/DevTools listening on (ws:\/\/\S+)/);
      if (m) { clearTimeout(t); resolve(m[1]); }
    });
    proc.on('exit', (code) => reject(new Error(`chromium exited ${code}: ${err}`)));
  });
  const sock = new WebSocket(endpoint, { perMessageDeflate: false });
  await new Promise((r, j) => { sock.once('open', r); sock.once('error', j); });
  let id = 0;
  const pending = new Map();
  sock.on('message', (m) => {
    const msg = JSON.parse(m);
    const p = pending.get(msg.id);
    if (!p) return;
    pending.delete(msg.id);
    if (msg.error) p.reject(new Error(JSON.stringify(msg.error)));
    else p.resolve(msg.result);
  });
  const call = (method, params = {}, sessionId) => new Promise((resolve, reject) => {
    const n = ++id;
    pending.set(n, { resolve, reject });
    sock.send(JSON.stringify({ id: n, method, params, sessionId }));
  });
  const { targetId } = await call('Target.createTarget', { url: pageURL });
  const { sessionId } = await call('Target.attachToTarget', { targetId, flatten: true });
  const evaluate = async (expression) => {
    const r = await call('Runtime.evaluate', { expression, awaitPromise: true, returnByValue: true }, sessionId);
    if (r.exceptionDetails) throw new Error(`in the page: ${JSON.stringify(r.exceptionDetails)}`);
    return r.result.value;
  };
  const loaded = async () => {
    for (let i = 0; ; i++) {
      const href = await evaluate('location.href').catch(() => '');
      if (href.startsWith(pageURL.slice(0, 20)) && (await evaluate('document.readyState').catch(() => '')) === 'complete') return;
      if (i > 500) throw new Error('the page did not load');
      await sleep(20);
    }
  };
  await loaded();
  return {
    evaluate,
    loaded,
    async close() {
      sock.close();
      const exited = proc.exitCode === null ? new Promise((r) => proc.once('exit', r)) : Promise.resolve();
      proc.kill();
      await exited;
      // Chromium's helper processes (crashpad) outlive the browser and may
      // still write to the profile: removing it is best effort, never a
      // failed check (seen in CI: ENOTEMPTY after every check had passed).
      try {
        rmSync(profile, { recursive: true, force: true, maxRetries: 10, retryDelay: 200 });
      } catch (err) {
        console.error(`left ${profile}: ${err.code}`);
      }
    },
  };
}

// A browser EventSource that loses its connection resumes by itself: the
// HTML spec has it reconnect with `Last-Event-ID` set to the last event's
// id, and every notification event carries `id: <seq>`.
async function chromiumEventSource() {
  const { q, res } = await setup('chromium');
  const px = await proxy();
  const origin = new URL(px.url).origin;
  const browser = await chromium(`${origin}/healthz`);
  try {
    const src = `/graphql?query=${encodeURIComponent(streamQuery)}&variables=${encodeURIComponent(JSON.stringify({ q }))}&extensions=${encodeURIComponent(JSON.stringify({ authorization: auth }))}`;
    await browser.evaluate(`(() => {
      window.seqs = []; window.ids = []; window.errors = 0;
      const es = new EventSource(${JSON.stringify(src)});
      es.addEventListener('next', (e) => { window.seqs.push(JSON.parse(e.data).data.notifications.seq); window.ids.push(e.lastEventId); });
      es.onerror = () => { window.errors++; };
      window.es = es;
    })()`);
    const seen = () => browser.evaluate('window.seqs.length');
    const total = 9;
    for (let i = 1; i <= total; i++) {
      await publish(res, { i });
      if (i % 3 === 0) {
        const end = Date.now() + 30000;
        while ((await seen()) < i - 1) {
          if (Date.now() > end) throw new Error(`the browser saw ${await seen()} of ${i - 1}`);
          await sleep(50);
        }
        px.cut();
      }
    }
    const end = Date.now() + 60000;
    while ((await seen()) < total) {
      if (Date.now() > end) throw new Error(`the browser saw ${await seen()} of ${total}`);
      await sleep(50);
    }
    await sleep(200);
    const seqs = await browser.evaluate('window.seqs');
    const ids = await browser.evaluate('window.ids');
    const errors = await browser.evaluate('window.errors');
    await browser.evaluate('window.es.close()');
    assert.deepEqual(seqs, Array.from({ length: total }, (_, i) => i + 1), 'a gap or a duplicate');
    assert.deepEqual(ids, seqs.map(String));
    assert.ok(errors >= px.cuts, `the browser saw ${errors} connection errors for ${px.cuts} cuts`);
    console.log(`ok Chromium EventSource resumed after ${px.cuts} cuts (${errors} reconnects) with no gap and no duplicate`);
  } finally {
    await browser.close();
    px.close();
  }
}

// subscriptions-transport-ws, the legacy protocol: a client that sends
// nothing stays connected past 3 ping intervals (the server pings it and
// counts its pongs), gets `ka` often enough for its own timeout check
// (`timeout`, scaled down here with the server's intervals), and sees
// subscribe-time errors with their code.
async function legacy() {
  const { SubscriptionClient } = await import('subscriptions-transport-ws');
  const { default: WebSocket } = await import('ws');
  const { q, res } = await setup('legacy');
  let disconnects = 0;
  let kas = 0;
  const client = new SubscriptionClient(wsUrl, { connectionParams: { authorization: auth }, reconnect: false, timeout: 3 * idleMs }, WebSocket);
  client.onDisconnected(() => disconnects++);
  client.client.addEventListener('message', (e) => { if (JSON.parse(e.data).type === 'ka') kas++; });
  const got = [];
  const errs = [];
  const sub = client.request({ query: streamQuery, variables: { q } }).subscribe({ next: (r) => got.push(r), error: (e) => errs.push(e) });
  await publish(res, { i: 1 });
  await waitFor('the first notification', () => got.length >= 1);
  const idle = 5 * idleMs;
  await sleep(idle); // the client sends nothing meanwhile
  assert.equal(disconnects, 0, 'the idle legacy connection was cut');
  assert.ok(kas >= 2, `only ${kas} ka in ${idle} ms`);
  await publish(res, { i: 2 });
  await waitFor('the notification after idle', () => got.length >= 2 || disconnects > 0);
  assert.equal(disconnects, 0);
  assert.equal(got[1].data.notifications.seq, 2);
  console.log(`ok legacy connection idle ${idle} ms (${kas} ka), then receives`);

  const bad = [];
  client.request({ query: streamQuery, variables: { q: 'no-such-queue' } }).subscribe({ next: (r) => bad.push(r.errors), error: (e) => bad.push(e) });
  await waitFor('the error', () => bad.length >= 1);
  assert.equal(code(bad[0]), 'QUEUE_NOT_FOUND', JSON.stringify(bad[0]));
  await publish(res, { i: 3 });
  await waitFor('the notification after the error', () => got.length >= 3);
  console.log('ok legacy QUEUE_NOT_FOUND at subscribe, other operations go on');
  sub.unsubscribe();
  client.close();
  assert.equal(errs.length, 0, JSON.stringify(errs));
}

// Apollo Client's GraphQLWsLink over graphql-ws, in Node 20 (no global
// WebSocket). graphql-ws's PROTOCOL.md: the `error` message is for
// "Operation execution error(s) in response to the Subscribe message. This
// can occur before execution starts, usually due to validation errors";
// its reference server sends errors that happen once the operation runs
// as a `next` result followed by `complete`. An error at subscribe then
// reaches the application with its code, and other operations go on.
async function apolloWS() {
  const { ApolloClient, InMemoryCache, gql: tag } = await import('@apollo/client');
  const { GraphQLWsLink } = await import('@apollo/client/link/subscriptions');
  const { createClient } = await import('graphql-ws');
  const { default: WebSocket } = await import('ws');
  let closes = 0;
  const ws = createClient({ url: wsUrl, webSocketImpl: WebSocket, connectionParams: { authorization: auth }, on: { closed: () => closes++ } });
  const client = new ApolloClient({ link: new GraphQLWsLink(ws), cache: new InMemoryCache() });
  const { q, res } = await setup('apollows');
  const got = [];
  const sub = client.subscribe({ query: tag(streamQuery), variables: { q } }).subscribe({ next: (r) => got.push(r) });
  await publish(res, { i: 1 });
  await waitFor('the first notification', () => got.length >= 1);
  assert.equal(got[0].data.notifications.seq, 1);
  const errs = [];
  client.subscribe({ query: tag(streamQuery), variables: { q: 'no-such-queue' } }).subscribe({
    next: (r) => { if (r.error) errs.push(r.error); },
    error: (e) => errs.push(e),
  });
  await waitFor('the error', () => errs.length >= 1);
  assert.equal(errs[0].errors?.[0]?.extensions?.code, 'QUEUE_NOT_FOUND', String(errs[0]));
  await publish(res, { i: 2 });
  await waitFor('the notification after the error', () => got.length >= 2);
  assert.equal(closes, 0, 'the socket was torn down');
  console.log('ok Apollo GraphQLWsLink: QUEUE_NOT_FOUND at subscribe, the other subscription goes on');
  sub.unsubscribe();
  await ws.dispose();
}

// graphql-ws's PROTOCOL.md on Ping: "Useful for detecting failed
// connections, displaying latency metrics or other types of network
// probing." Clients that time out reads (hasura/go-graphql-client) need a
// message while idle: the server sends protocol `ping`s, the client
// answers `pong` by itself.
async function graphqlWSPing() {
  const { createClient } = await import('graphql-ws');
  const { default: WebSocket } = await import('ws');
  let pings = 0;
  const ws = createClient({ url: wsUrl, webSocketImpl: WebSocket, connectionParams: { authorization: auth }, on: { ping: (received) => { if (received) pings++; } } });
  const { q, res } = await setup('wsping');
  const it = ws.iterate({ query: streamQuery, variables: { q } });
  await publish(res, { i: 1 });
  assert.equal((await it.next()).value.data.notifications.seq, 1);
  const idle = 5 * idleMs;
  await sleep(idle);
  assert.ok(pings >= 2, `${pings} ping messages in ${idle} ms idle`);
  await publish(res, { i: 2 });
  assert.equal((await it.next()).value.data.notifications.seq, 2);
  console.log(`ok ${pings} protocol pings on an idle graphql-transport-ws connection`);
  await it.return();
  await ws.dispose();
}

// GraphiQL as a person uses it: paste a token, and the schema's docs
// appear; the token is remembered for the tab (sessionStorage, not
// localStorage) across a reload; GraphiQL and the status page link to each
// other.
async function graphiql() {
  const origin = new URL(url).origin;
  const browser = await chromium(`${origin}/`);
  const token = process.env.MESHGATE_TOKEN;
  const docs = async () => {
    const end = Date.now() + 30000;
    for (;;) {
      const text = await browser.evaluate(`(() => {
        const ex = document.querySelector('.graphiql-doc-explorer');
        if (!ex) { document.querySelector('button[aria-label="Show Documentation Explorer"]')?.click(); return ''; }
        return ex.innerText;
      })()`).catch(() => '');
      if (/Root Types/.test(text) && /Mutation/.test(text) && /Subscription/.test(text)) return text;
      if (Date.now() > end) throw new Error(`no schema docs; the explorer shows: ${JSON.stringify(text)}`);
      await sleep(100);
    }
  };
  try {
    const hint = await browser.evaluate(`document.getElementById('hint')?.textContent ?? ''`);
    await browser.evaluate(`(() => {
      const i = document.getElementById('token');
      i.value = ${JSON.stringify(token)};
      i.dispatchEvent(new Event('paste'));
    })()`);
    await docs();
    console.log('ok GraphiQL shows the schema docs once a token is pasted');
    assert.match(hint, /paste a token/, 'without a token the bar says what to do');
    assert.equal(await browser.evaluate(`sessionStorage.getItem('meshgate.token')`), token);
    assert.equal(await browser.evaluate(`localStorage.getItem('meshgate.token')`), null);
    await browser.evaluate('location.reload()').catch(() => {});
    await sleep(200);
    await browser.loaded();
    assert.equal(await browser.evaluate(`document.getElementById('token').value`), token);
    await docs();
    console.log('ok the token is remembered for the tab across a reload (sessionStorage)');
    assert.ok(await browser.evaluate(`!!document.querySelector('#bar a[href="/status"]')`), 'GraphiQL does not link to /status');
    const status = await browser.evaluate(`fetch('/status').then((r) => r.text())`);
    assert.match(status, /<a href="\/"[^>]*>GraphiQL<\/a>/, 'the status page does not link to GraphiQL');
    console.log('ok GraphiQL and the status page link to each other');
  } finally {
    await browser.close();
  }
}

// Every streaming client at once, with its default settings and the
// server's, idle for MESHGATE_IDLE_MS (5 minutes in the test), then each
// must still receive on the same connection, which must not have dropped.
async function idle() {
  const { default: WebSocket } = await import('ws');
  const { createClient: wsClient } = await import('graphql-ws');
  const { createClient: sseClient } = await import('graphql-sse');
  const { EventSource } = await import('eventsource');
  const { SubscriptionClient } = await import('subscriptions-transport-ws');
  const { ApolloClient, InMemoryCache, HttpLink, gql: tag } = await import('@apollo/client');
  const { GraphQLWsLink } = await import('@apollo/client/link/subscriptions');
  const { Client: Urql, fetchExchange } = await import('@urql/core');
  const drops = {};
  const drop = (name) => () => { drops[name] = (drops[name] || 0) + 1; };
  const clients = {
    'graphql-ws': (q, push) => {
      const c = wsClient({ url: wsUrl, webSocketImpl: WebSocket, connectionParams: { authorization: auth }, on: { closed: drop('graphql-ws') } });
      c.subscribe({ query: streamQuery, variables: { q } }, { next: push, error: drop('graphql-ws'), complete: () => {} });
      return () => c.dispose();
    },
    'apollo-ws': (q, push) => {
      const c = wsClient({ url: wsUrl, webSocketImpl: WebSocket, connectionParams: { authorization: auth }, on: { closed: drop('apollo-ws') } });
      const a = new ApolloClient({ link: new GraphQLWsLink(c), cache: new InMemoryCache() });
      const sub = a.subscribe({ query: tag(streamQuery), variables: { q } }).subscribe({ next: push, error: drop('apollo-ws') });
      return () => { sub.unsubscribe(); c.dispose(); };
    },
    'apollo-http': (q, push) => {
      const a = new ApolloClient({ link: new HttpLink({ uri: url, headers: { authorization: auth } }), cache: new InMemoryCache() });
      const sub = a.subscribe({ query: tag(streamQuery), variables: { q } }).subscribe({ next: push, error: drop('apollo-http'), complete: drop('apollo-http') });
      return () => sub.unsubscribe();
    },
    urql: (q, push) => {
      const u = new Urql({ url, exchanges: [fetchExchange], fetchOptions: { headers: { authorization: auth } }, fetchSubscriptions: true });
      const sub = u.subscription(streamQuery, { q }).subscribe((r) => (r.error ? drop('urql')() : push(r)));
      return () => sub.unsubscribe();
    },
    'graphql-sse': (q, push) => {
      const c = sseClient({ url, headers: { authorization: auth } });
      c.subscribe({ query: streamQuery, variables: { q } }, { next: push, error: drop('graphql-sse'), complete: drop('graphql-sse') });
      return () => c.dispose();
    },
    eventsource: (q, push) => {
      const es = new EventSource(`${url}?query=${encodeURIComponent(streamQuery)}&variables=${encodeURIComponent(JSON.stringify({ q }))}&extensions=${encodeURIComponent(JSON.stringify({ authorization: auth }))}`);
      es.addEventListener('next', (e) => push(JSON.parse(e.data)));
      es.onerror = drop('eventsource');
      return () => es.close();
    },
    legacy: (q, push) => {
      const c = new SubscriptionClient(wsUrl, { connectionParams: { authorization: auth }, reconnect: false }, WebSocket);
      c.onDisconnected(drop('legacy'));
      c.request({ query: streamQuery, variables: { q } }).subscribe({ next: push, error: drop('legacy') });
      return () => c.close();
    },
  };
  const runs = await Promise.all(Object.entries(clients).map(async ([name, open]) => {
    const { q, res } = await setup(`idle-${name}`);
    const got = [];
    const close = open(q, (r) => got.push(r?.data?.notifications?.seq));
    await publish(res, { i: 1 });
    await waitFor(`${name}: the first notification`, () => got.length >= 1);
    return { name, res, got, close };
  }));
  console.log(`all ${runs.length} clients streaming; idle for ${idleMs} ms`);
  await sleep(idleMs);
  await Promise.all(runs.map((r) => publish(r.res, { i: 2 })));
  await Promise.all(runs.map((r) => waitFor(`${r.name}: the notification after idle`, () => r.got.length >= 2)));
  for (const r of runs) {
    assert.deepEqual(r.got, [1, 2], `${r.name} got ${JSON.stringify(r.got)}`);
    assert.equal(drops[r.name], undefined, `${r.name} dropped or errored ${drops[r.name]} time(s) while idle`);
    r.close();
  }
  console.log(`ok ${runs.map((r) => r.name).join(', ')}: idle ${idleMs} ms with default settings, then receive on the same connection`);
}

// Apollo Client's HttpLink in Chromium: the browser's fetch reads the
// multipart stream. @apollo/client is bundled for the page with esbuild
// and evaluated there, on the gateway's origin.
async function apolloChromium() {
  const esbuild = await import('esbuild');
  const bundle = await esbuild.build({
    stdin: { contents: "import { ApolloClient, InMemoryCache, HttpLink, gql } from '@apollo/client'; window.Apollo = { ApolloClient, InMemoryCache, HttpLink, gql };", resolveDir: process.cwd(), loader: 'js' },
    bundle: true, format: 'iife', platform: 'browser', write: false, logLevel: 'silent',
    define: { 'process.env.NODE_ENV': '"production"' },
  });
  const { q, res } = await setup('apollo-chromium');
  const browser = await chromium(`${new URL(url).origin}/healthz`);
  try {
    await browser.evaluate(bundle.outputFiles[0].text);
    const open = (queue) => browser.evaluate(`(() => {
      const c = new Apollo.ApolloClient({ link: new Apollo.HttpLink({ uri: '/graphql', headers: { authorization: ${JSON.stringify(auth)} } }), cache: new Apollo.InMemoryCache() });
      const run = { got: [], errors: [] };
      (window.runs ||= {})[${JSON.stringify(queue)}] = run;
      run.sub = c.subscribe({ query: Apollo.gql(${JSON.stringify(streamQuery)}), variables: { q: ${JSON.stringify(queue)} } }).subscribe({
        next: (r) => { if (r.error) run.errors.push(r.error.errors?.[0]?.extensions?.code ?? String(r.error)); else run.got.push(r.data.notifications.seq); },
        error: (e) => run.errors.push(e.errors?.[0]?.extensions?.code ?? String(e)),
      });
    })()`);
    const run = (queue) => browser.evaluate(`({ got: window.runs[${JSON.stringify(queue)}].got, errors: window.runs[${JSON.stringify(queue)}].errors })`);
    const until = async (what, queue, cond) => {
      const end = Date.now() + 20000;
      for (;;) {
        const r = await run(queue);
        if (cond(r)) return r;
        if (Date.now() > end) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(r)}`);
        await sleep(50);
      }
    };
    await open(q);
    await publish(res, { i: 1 });
    await until('the first notification', q, (r) => r.got.length >= 1 || r.errors.length);
    await sleep(idleMs); // heartbeats meanwhile
    await publish(res, { i: 2 });
    const r = await until('the notification after idle', q, (r) => r.got.length >= 2 || r.errors.length);
    assert.deepEqual(r, { got: [1, 2], errors: [] });
    await browser.evaluate(`window.runs[${JSON.stringify(q)}].sub.unsubscribe()`);
    console.log('ok Apollo HttpLink in Chromium: multipart subscription, receive after idle, unsubscribe');
    await open('no-such-queue');
    const e = await until('the error', 'no-such-queue', (r) => r.errors.length >= 1);
    assert.equal(e.errors[0], 'QUEUE_NOT_FOUND');
    console.log('ok Apollo HttpLink in Chromium: QUEUE_NOT_FOUND in the stream');
  } finally {
    await browser.close();
  }
}

const modes = { 'graphql-sse': graphqlSSE, eventsource: eventSource, urql, 'apollo-http': apolloHTTP, chromium: chromiumEventSource, legacy, 'apollo-ws': apolloWS, 'graphql-ws-ping': graphqlWSPing, graphiql, idle, 'apollo-chromium': apolloChromium };
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

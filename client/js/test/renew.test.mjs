// Token renewal when the gateway ends a stream for its token, not ahead
// of exp: the gateway closes with 4403 when a connection's token expires
// (server/ws.go tick: "token expired"), and graphql-ws servers in front of
// it (or other gateways) close with 4401 Unauthorized. Either way the SDK
// mints a new token, reopens the stream and resumes after the last seq (on
// SSE the gateway ends the stream with an UNAUTHENTICATED result instead):
// every notification arrives once, in order, on the same queue.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import WebSocket from 'ws';
import { createClient } from '../dist/index.js';
import { Proxy, record, startGateway, waitFor } from './gateway.mjs';

let gw, proxy;
before(async () => {
  gw = await startGateway();
  proxy = await new Proxy(gw.url).start();
});
after(async () => {
  await proxy?.stop();
  await gw?.stop();
});

/** publishUntil publishes resource at r0, r1, … every 50 ms until done()
 * holds, then 5 more, and returns the etags sent. */
async function publishUntil(resource, done, prefix = 'r') {
  const sent = [];
  let extra = 5;
  for (let i = 0; !done() || extra-- > 0; i++) {
    sent.push(`${prefix}${i}`);
    await gw.publish(resource, `${prefix}${i}`);
    await new Promise((r) => setTimeout(r, 50));
    assert.ok(i < 600, 'the stream did not come back');
  }
  return sent;
}

function assertOnceInOrder(events, sent) {
  assert.deepEqual(events.map((e) => e.etag), sent, 'a notification lost or repeated');
  const seqs = events.map((e) => e.seq);
  assert.ok(seqs.every((s, i) => i === 0 || s > seqs[i - 1]), `seqs not increasing: ${seqs}`);
}

test('a token that expires mid-stream: the gateway closes 4403, the SDK renews and resumes with no gap or duplicate', async (t) => {
  let minted = 0;
  const client = createClient({
    url: gw.url,
    // The first token lives 3 s; the SDK is told to renew only long after
    // exp (as a client whose clock runs behind the gateway's would), so it
    // is the gateway that ends the stream.
    token: () => (minted++ === 0 ? gw.token('alice', 'expiring', { ttl: '3s' }) : gw.token('alice', 'expiring')),
    renewBeforeMs: -600_000,
    webSocketImpl: WebSocket,
    minBackoffMs: 50,
    maxBackoffMs: 200,
  });
  t.after(() => client.close());
  const errors = [];
  client.on('error', (e) => errors.push(e.message));
  const w = client.watch('user:alice/expiring');
  const events = record(w);
  await w.ready;
  await waitFor(() => client.state === 'live', 'live');
  const sent = await publishUntil('user:alice/expiring', () => client.stats().tokenRefreshes >= 1 && client.state === 'live' && client.stats().reconnects >= 1);
  await waitFor(() => events.length >= sent.length, () => `${sent.length} events, got ${events.length}`);
  assertOnceInOrder(events, sent);
  assert.ok(errors.some((m) => /WebSocket closed 4403 token expired/.test(m)), `the gateway did not close with 4403: ${errors}`);
  assert.equal(client.stats().queuesCreated, 1, 'a new queue: the stream did not resume');
  assert.equal(client.transport, 'websocket');
  assert.ok(minted >= 2);
});

test('a token that expires mid-stream on SSE: the gateway ends the stream with UNAUTHENTICATED, the SDK renews and resumes', async (t) => {
  let minted = 0;
  const client = createClient({
    url: gw.url,
    token: () => (minted++ === 0 ? gw.token('alice', 'expiring-sse', { ttl: '3s' }) : gw.token('alice', 'expiring-sse')),
    renewBeforeMs: -600_000, // as above: the gateway ends the stream, not the SDK's timer
    transports: ['sse'],
    minBackoffMs: 50,
    maxBackoffMs: 200,
  });
  t.after(() => client.close());
  const errors = [];
  client.on('error', (e) => errors.push(`${e.code ?? e.name}: ${e.message}`));
  const w = client.watch('user:alice/expiring-sse');
  const events = record(w);
  await w.ready;
  await waitFor(() => client.state === 'live', 'live');
  assert.equal(client.transport, 'sse');
  const sent = await publishUntil('user:alice/expiring-sse', () => client.stats().tokenRefreshes >= 1 && client.state === 'live' && client.stats().reconnects >= 1);
  await waitFor(() => events.length >= sent.length, () => `${sent.length} events, got ${events.length}`);
  assertOnceInOrder(events, sent);
  assert.ok(errors.some((m) => m.startsWith('UNAUTHENTICATED')), `no UNAUTHENTICATED from the stream: ${errors}`);
  assert.equal(client.stats().queuesCreated, 1);
});

test('a WebSocket closed with 4401 mid-stream: the SDK renews the token and resumes with no gap or duplicate', async (t) => {
  let minted = 0;
  const client = createClient({
    url: proxy.url,
    token: () => (minted++, gw.token('alice', 'unauthorized')),
    webSocketImpl: WebSocket,
    minBackoffMs: 50,
    maxBackoffMs: 200,
  });
  t.after(() => client.close());
  const errors = [];
  client.on('error', (e) => errors.push(e.message));
  const w = client.watch('user:alice/unauthorized');
  const events = record(w);
  await w.ready;
  await waitFor(() => client.state === 'live', 'live');
  const before = await publishUntil('user:alice/unauthorized', () => true, 'a');
  await waitFor(() => events.length === before.length, 'the first events');
  const refreshes = client.stats().tokenRefreshes;
  // Nothing in flight: the close frame is the next thing the client reads.
  proxy.closeWebSockets(4401, 'Unauthorized');
  const later = await publishUntil('user:alice/unauthorized', () => client.stats().tokenRefreshes > refreshes && client.state === 'live', 'b');
  const sent = [...before, ...later];
  await waitFor(() => events.length >= sent.length, () => `${sent.length} events, got ${events.length}`);
  assertOnceInOrder(events, sent);
  assert.ok(errors.some((m) => /WebSocket closed 4401/.test(m)), `no 4401 seen: ${errors}`);
  assert.equal(client.stats().queuesCreated, 1);
  assert.ok(minted >= 2);
});

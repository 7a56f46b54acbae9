// When a proxy refuses WebSocket upgrades the client falls back to SSE,
// and when it also refuses event streams, to HTTP long-poll; it tries
// WebSocket again later. Every notification arrives once on the way.
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

test('WebSocket refused: SSE, then long-poll, then WebSocket again', async (t) => {
  proxy.mode = 'refuse-ws';
  const client = createClient({
    url: proxy.url,
    token: () => gw.token('alice', 'office'),
    webSocketImpl: WebSocket,
    maxBackoffMs: 300,
    retryPreferredAfterMs: 6000,
    pollWaitSeconds: 2,
  });
  t.after(() => client.close());
  const transports = [];
  client.on('state', (s) => transports.push(`${s}:${client.transport}`));
  const w = client.watch('user:alice/feed');
  const events = record(w);
  await w.ready;

  await waitFor(() => client.state === 'live' && client.transport === 'sse', 'live over SSE');
  await gw.publish('user:alice/feed', 'f1');
  await waitFor(() => events.length === 1, 'f1 over SSE');

  // The proxy now refuses event streams too, and drops what is open.
  proxy.mode = 'refuse-streams';
  proxy.cut();
  await waitFor(() => client.state === 'polling' && client.transport === 'poll', 'polling');
  await gw.publish('user:alice/feed', 'f2');
  await gw.publish('user:alice/feed', 'f3');
  await waitFor(() => events.length === 3, 'f2 and f3 over long-poll');

  // The proxy lets WebSocket through again: the client goes back to it.
  proxy.mode = 'pass';
  await waitFor(() => client.state === 'live' && client.transport === 'websocket', 'back on WebSocket', 30_000);
  await gw.publish('user:alice/feed', 'f4');
  await waitFor(() => events.length === 4, 'f4 over WebSocket');

  assert.deepEqual(events.map((e) => e.etag), ['f1', 'f2', 'f3', 'f4']);
  assert.equal(client.stats().queuesCreated, 1);
  assert.ok(client.stats().fallbacks >= 2);
  assert.ok(transports.includes('live:sse') && transports.includes('polling:poll') && transports.at(-1) === 'live:websocket', transports.join(' '));
});

test('the network is cut: the client reconnects and resumes after its last seq', async (t) => {
  proxy.mode = 'pass';
  const client = createClient({ url: proxy.url, token: () => gw.token('alice', 'train'), webSocketImpl: WebSocket, maxBackoffMs: 300 });
  t.after(() => client.close());
  const w = client.watch('user:alice/cut');
  const events = record(w);
  await w.ready;
  await waitFor(() => client.state === 'live', 'live');
  for (let i = 0; i < 5; i++) {
    await gw.publish('user:alice/cut', `c${i}`);
    proxy.cut();
  }
  await waitFor(() => events.length === 5, 'five events');
  assert.deepEqual(events.map((e) => e.etag), ['c0', 'c1', 'c2', 'c3', 'c4']);
  await waitFor(() => client.state === 'live', 'live again');
  assert.ok(client.stats().reconnects >= 1);
  assert.equal(client.stats().queuesCreated, 1);
});

for (const transport of ['websocket', 'sse', 'poll']) {
  test(`${transport} alone: cuts in the middle of a stream lose nothing and repeat nothing`, async (t) => {
    proxy.mode = 'pass';
    const client = createClient({ url: proxy.url, token: () => gw.token('alice', `only-${transport}`), webSocketImpl: WebSocket, transports: [transport], maxBackoffMs: 300, pollWaitSeconds: 2 });
    t.after(() => client.close());
    const w = client.watch(`user:alice/only/${transport}`);
    const events = record(w);
    await w.ready;
    await waitFor(() => client.state === (transport === 'poll' ? 'polling' : 'live'), 'streaming');
    const sent = [];
    for (let i = 0; i < 12; i++) {
      sent.push(`${transport}${i}`);
      await gw.publish(w.resource, `${transport}${i}`);
      if (i % 4 === 3) proxy.cut();
    }
    await waitFor(() => events.length >= sent.length, `${sent.length} events`);
    assert.deepEqual(events.map((e) => e.etag), sent);
    assert.equal(client.transport, transport);
    assert.equal(client.stats().queuesCreated, 1);
  });
}

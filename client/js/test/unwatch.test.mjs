// A watch closed while its subscribe is still on its way: once the
// subscribe lands the resource is subscribed at the gateway, and nobody
// watches it. The close must win: the queue ends unsubscribed, and no
// notification of the resource comes any more.
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

test('a watch closed while subscribing leaves its resource unsubscribed', async (t) => {
  const client = createClient({ url: proxy.url, token: () => gw.token('alice', 'unwatch'), webSocketImpl: WebSocket });
  t.after(() => client.close());
  const r = 'user:alice/unwatch';
  // The proxy holds r's subscribe until release().
  let release, arrived;
  const held = new Promise((res) => (release = res));
  const subscribing = new Promise((res) => (arrived = res));
  proxy.answer = ({ query, variables }) => {
    if (variables?.resource !== r || !/(^|[^n])subscribe\(/.test(query)) return undefined;
    arrived();
    return held;
  };
  t.after(() => (proxy.answer = undefined));
  const w = client.watch(r);
  await subscribing;
  const closing = w.close();
  release();
  await closing;
  // A watch made after the close is subscribed after it (the client
  // subscribes one at a time): once it is ready, r's subscribe has landed.
  const probe = client.watch('user:alice/unwatch-probe');
  const evs = record(probe);
  await probe.ready;
  await waitFor(() => client.state === 'live', 'live');
  const before = client.stats().notifications;
  await gw.publish(r, 'r1');
  await gw.publish(probe.resource, 'p1'); // queued after r1, if r is still subscribed
  await waitFor(() => evs.some((e) => e.etag === 'p1'), 'p1');
  assert.equal(client.stats().notifications - before, 1, `a notification of ${r} came after its watch was closed: the queue is still subscribed to it`);
  assert.equal(w.etag, undefined);
});

// ETAG_UNKNOWN: '' means "never published", so when nobody knows a
// resource's version the client says so with its own event, never as a
// RESYNC or CHANGED_WHILE_AWAY to ''. Against a real gateway (its `user`
// plugin keeps etags in memory and forgets them when it restarts).
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import WebSocket from 'ws';
import { createClient, memoryStorage } from '../dist/index.js';
import { record, startGateway, waitFor } from './gateway.mjs';

let gw;
before(async () => {
  gw = await startGateway();
});
after(async () => {
  await gw?.stop();
});

for (const transports of [['websocket'], ['sse'], ['poll']]) {
  test(`a RESYNC flagged etagUnknown arrives as ETAG_UNKNOWN over ${transports[0]}`, async (t) => {
    const device = `unknown-${transports[0]}`;
    const client = createClient({ url: gw.url, token: () => gw.token('alice', device), webSocketImpl: WebSocket, transports });
    t.after(() => client.close());
    const w = client.watch(`user:alice/${device}`);
    const events = record(w);
    const unknown = [];
    w.on('ETAG_UNKNOWN', (ev) => unknown.push(ev));
    await w.ready;
    // Subscribing the client's own queue again, with an etag the publisher
    // does not know (the resource was never published here), makes the
    // gateway answer '' flagged etagUnknown and put a RESYNC flagged so in
    // the queue.
    const tok = await gw.token('alice', device);
    const { subscribe } = await gw.gql(tok, 'mutation($q:String!,$r:String!){ subscribe(queue:$q, resource:$r, knownEtag:"gone") { etag etagUnknown } }', { q: client.queue, r: w.resource });
    assert.deepEqual(subscribe, { etag: '', etagUnknown: true });
    const ev = await waitFor(() => events.find((e) => e.kind === 'ETAG_UNKNOWN'), 'ETAG_UNKNOWN');
    assert.equal(ev.etag, '');
    assert.ok(ev.seq > 0);
    assert.equal(unknown.length, 1);
    assert.ok(!events.some((e) => e.kind === 'RESYNC'), `a RESYNC with '' reached the watch: ${JSON.stringify(events)}`);
    assert.equal(client.stats().etagUnknown, 1);
    assert.equal(w.etag, '', 'the last etag known is kept');
    await gw.publish(w.resource, 'v2');
    await waitFor(() => w.etag === 'v2', 'v2 after it');
  });
}

test('a restart that loses the queue and the publisher\'s etags: ETAG_UNKNOWN, not CHANGED_WHILE_AWAY to ""', async (t) => {
  const storage = memoryStorage();
  const client = createClient({ url: gw.url, token: () => gw.token('alice', 'restart'), webSocketImpl: WebSocket, storage, maxBackoffMs: 500 });
  t.after(() => client.close());
  const w = client.watch('user:alice/restart');
  const events = record(w);
  await w.ready;
  await waitFor(() => client.state === 'live', 'live');
  await gw.publish(w.resource, 'u1');
  await waitFor(() => w.etag === 'u1', 'u1');
  const oldQueue = client.queue;

  // The gateway restarts: its queues are gone, and its `user` plugin
  // knows no etag any more. Nothing is published after.
  await gw.stop();
  await gw.start();

  const ev = await waitFor(() => events.find((e) => e.kind === 'ETAG_UNKNOWN' || e.kind === 'CHANGED_WHILE_AWAY'), 'an event after the restart', 30_000);
  assert.equal(ev.kind, 'ETAG_UNKNOWN', `after the restart: ${JSON.stringify(ev)}`);
  assert.equal(ev.etag, '');
  assert.notEqual(client.queue, oldQueue);
  assert.equal(w.etag, 'u1', 'the last etag known is kept');
  await waitFor(() => client.state === 'live', 'live again');
  await gw.publish(w.resource, 'u2');
  const next = await waitFor(() => events.find((e) => e.kind === 'CHANGED' && e.etag === 'u2'), 'u2');
  assert.equal(w.etag, next.etag);
});

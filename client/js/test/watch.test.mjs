// The client against a real gateway: watch, receive, renew the token on a
// live connection, and make a new queue when the gateway lost its own.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import WebSocket from 'ws';
import { createClient, isCode, memoryStorage } from '../dist/index.js';
import { record, shareFolder, startGateway, waitFor } from './gateway.mjs';

let gw;
before(async () => {
  gw = await startGateway();
});
after(async () => {
  await gw?.stop();
});

test('watch receives each change once, in order, over WebSocket', async (t) => {
  const client = createClient({ url: gw.url, token: () => gw.token('alice', 'laptop'), webSocketImpl: WebSocket });
  const states = [];
  client.on('state', (s) => states.push(s));
  t.after(() => client.close());
  const w = client.watch('user:alice/notes');
  const events = record(w);
  await w.ready;
  await waitFor(() => client.state === 'live', 'live');
  assert.equal(client.transport, 'websocket');
  for (const e of ['n1', 'n2', 'n3']) assert.equal(await gw.publish('user:alice/notes', e, { e }), 1);
  await waitFor(() => events.length === 3, 'three events');
  assert.deepEqual(events.map((e) => [e.kind, e.etag, e.payload.e]), [['CHANGED', 'n1', 'n1'], ['CHANGED', 'n2', 'n2'], ['CHANGED', 'n3', 'n3']]);
  assert.deepEqual(events.map((e) => e.seq), [...events.map((e) => e.seq)].sort((a, b) => a - b));
  assert.equal(w.etag, 'n3');

  // The async iterable sees what comes after it starts.
  const it = w[Symbol.asyncIterator]();
  await gw.publish('user:alice/notes', 'n4');
  const { value } = await it.next();
  assert.equal(value.etag, 'n4');
  await it.return();

  const s = client.stats();
  assert.equal(s.notifications, 4);
  assert.equal(s.queuesCreated, 1);
  assert.deepEqual(states, ['live']);
  const queue = client.queue;
  await client.close();
  assert.equal(client.state, 'closed');
  // close() deleted the queue.
  await assert.rejects(gw.gql(await gw.token('alice', 'laptop'), 'query($q:String!){ queue(name:$q) { name } }', { q: queue }), (e) => e.code === 'QUEUE_NOT_FOUND');
});

test('invites() delivers an INVITE from another device of the user', async (t) => {
  const client = createClient({ url: gw.url, token: () => gw.token('alice', 'desk'), webSocketImpl: WebSocket });
  t.after(() => client.close());
  const w = client.watch('user:alice/desk');
  await w.ready;
  await waitFor(() => client.state === 'live', 'live');
  const invites = client.invites();
  const other = await gw.token('alice', 'phone');
  assert.equal((await gw.gql(other, 'mutation { sendInvite(toDevice: "desk", payload: {port: 9000}) }')).sendInvite, 1);
  const { value } = await invites.next();
  assert.equal(value.kind, 'INVITE');
  assert.equal(value.from, 'alice/phone');
  assert.deepEqual(value.payload, { port: 9000 });
  await invites.return();
});

test('the example page is served only with --examples', async () => {
  const r = await fetch(`${gw.origin}/examples/app.js`);
  assert.ok(!(await r.text()).includes('createClient'), 'served /examples/ without --examples');
});

test('a resource the caller may not read ends its watch with FORBIDDEN', async (t) => {
  const client = createClient({ url: gw.url, token: () => gw.token('alice', 'laptop'), webSocketImpl: WebSocket });
  t.after(() => client.close());
  const w = client.watch('user:bob/secrets');
  await assert.rejects(w.ready, (e) => isCode(e, 'FORBIDDEN'));
  assert.ok(w.ended);
  const ok = client.watch('user:alice/ok');
  await ok.ready;
  await client.close();
});

test('the token is renewed on a live connection and no notification is lost', async (t) => {
  let minted = 0;
  const client = createClient({
    url: gw.url,
    token: () => (minted++, gw.token('alice', 'renewing', { ttl: '6s' })),
    webSocketImpl: WebSocket,
    renewBeforeMs: 3000,
  });
  t.after(() => client.close());
  const errors = [];
  client.on('error', (e) => errors.push(e.message));
  const w = client.watch('user:alice/renew');
  const events = record(w);
  await w.ready;
  await waitFor(() => client.state === 'live', 'live');
  // Publish steadily across at least two renewals; the first token expires
  // after 6 s, and the gateway closes a connection whose token expired.
  const sent = [];
  for (let i = 0; client.stats().tokenRefreshes < 3; i++) {
    sent.push(`r${i}`);
    await gw.publish('user:alice/renew', `r${i}`);
    await new Promise((r) => setTimeout(r, 100));
    assert.ok(i < 400, 'the token was not renewed in time');
  }
  await waitFor(() => events.length >= sent.length, `${sent.length} events`);
  assert.deepEqual(events.map((e) => e.etag), sent);
  assert.ok(minted >= 4);
  // Renewed ahead of exp every time: the gateway never had to refuse a token (4403).
  assert.deepEqual(errors, []);
  assert.equal(client.stats().reconnects, 0);
  assert.equal(client.stats().queuesCreated, 1);
  assert.equal(client.state, 'live');
  await client.close();
});

test('a token the gateway refuses (UNAUTHENTICATED) is replaced by a fresh one', async (t) => {
  const tokens = ['not.a-valid.token'];
  const client = createClient({ url: gw.url, token: () => tokens.shift() ?? gw.token('alice', 'refused'), webSocketImpl: WebSocket });
  t.after(() => client.close());
  const w = client.watch('user:alice/refused');
  const events = record(w);
  await w.ready;
  await waitFor(() => client.state === 'live', 'live');
  await gw.publish(w.resource, 'ok1');
  await waitFor(() => events.length === 1, 'ok1');
  assert.equal(client.stats().tokenRefreshes, 1);
});

test('a restart that loses the queue: a new queue, and CHANGED_WHILE_AWAY with the current etag', async (t) => {
  const folder = await shareFolder(gw, 'photos', ['alice']);
  const storage = memoryStorage();
  const client = createClient({ url: gw.url, token: () => gw.token('alice', 'phone'), webSocketImpl: WebSocket, storage, maxBackoffMs: 500 });
  t.after(() => client.close());
  const w = client.watch('storage:folders/photos');
  const events = record(w);
  await w.ready;
  await waitFor(() => client.state === 'live', 'live');
  writeFileSync(join(folder, 'cat.txt'), 'meow');
  const changed = await waitFor(() => events.find((e) => e.kind === 'CHANGED'), 'CHANGED for cat.txt');
  assert.deepEqual(changed.payload.added.map((a) => a.path), ['cat.txt']);
  assert.equal(w.etag, changed.etag);
  const oldQueue = client.queue;
  assert.equal(JSON.parse(storage.map.get('meshgate')).etags['storage:folders/photos'], changed.etag);

  // The gateway restarts (its queues are in memory); a file lands meanwhile.
  await gw.stop();
  writeFileSync(join(folder, 'dog.txt'), 'woof');
  await gw.start();

  const away = await waitFor(() => events.find((e) => e.kind === 'CHANGED_WHILE_AWAY'), 'CHANGED_WHILE_AWAY', 30_000);
  assert.notEqual(client.queue, oldQueue);
  // The etag it reports is the folder's current one, as a fresh subscriber sees it.
  const tok = await gw.token('alice', 'check');
  const { createQueue } = await gw.gql(tok, 'mutation { createQueue { name } }');
  const { subscribe } = await gw.gql(tok, 'mutation($q:String!){ subscribe(queue:$q, resource:"storage:folders/photos") { etag } }', { q: createQueue.name });
  assert.equal(away.etag, subscribe.etag);
  assert.notEqual(away.etag, changed.etag);
  assert.equal(w.etag, subscribe.etag);
  assert.equal(client.stats().queuesCreated, 2);
  await waitFor(() => client.state === 'live', 'live again');

  // And it goes on streaming on the new queue.
  writeFileSync(join(folder, 'bird.txt'), 'tweet');
  const next = await waitFor(() => events.find((e) => e.kind === 'CHANGED' && e.payload.added?.some((a) => a.path === 'bird.txt')), 'CHANGED for bird.txt');
  assert.equal(w.etag, next.etag);
  assert.equal(JSON.parse(storage.map.get('meshgate')).queue, client.queue);
  await client.close();
});

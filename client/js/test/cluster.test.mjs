// A 3-node cluster where the client's node is killed: the client moves to
// another URL, makes a new queue if its own died with the node, and ends
// with every resource's etag current.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import WebSocket from 'ws';
import { createClient } from '../dist/index.js';
import { startCluster, waitFor } from './gateway.mjs';

let nodes = [];
before(async () => {
  nodes = await startCluster(3);
});
after(async () => {
  for (const n of nodes) await n.stop();
});

test("the client's node is killed: it moves to another node and every etag ends current", async (t) => {
  const [n1, n2, n3] = nodes;
  const client = createClient({ urls: nodes.map((n) => n.url), token: () => n1.token('alice', 'roaming'), webSocketImpl: WebSocket, maxBackoffMs: 1000 });
  t.after(() => client.close());
  const resources = Array.from({ length: 6 }, (_, i) => `user:alice/cluster/${i}`);
  const watches = resources.map((r) => client.watch(r));
  await Promise.all(watches.map((w) => w.ready));
  await waitFor(() => client.state === 'live', 'live');
  assert.equal(client.stats().url, n1.url);
  const latest = new Map();
  const publish = async (via, r, e) => {
    await via.publish(r, e);
    latest.set(r, e);
  };
  for (const r of resources) await publish(n2, r, `${r}#1`);
  await waitFor(() => watches.every((w) => w.etag === latest.get(w.resource)), 'first etags');

  await n1.stop('SIGKILL');
  // Changes while the client's node is gone, published through a live node
  // (UNAVAILABLE while the ring settles: retried).
  for (const r of resources.slice(0, 3)) {
    await waitFor(() => publish(n3, r, `${r}#2`).then(() => true), `publish ${r} after the kill`, 60_000);
  }
  await waitFor(() => client.state === 'live' && client.stats().url !== n1.url, 'live on another node', 60_000);
  for (const r of resources) await waitFor(() => publish(n2, r, `${r}#3`).then(() => true), `publish ${r}`, 30_000);
  await waitFor(
    () => watches.every((w) => w.etag === latest.get(w.resource)),
    () => `every etag current: ${watches.map((w) => `${w.resource}=${w.etag}`).join(' ')}`,
    60_000,
  );
  assert.ok(watches.every((w) => !w.ended));
  t.diagnostic(JSON.stringify(client.stats()));
});

// OVERFLOW: while the client cannot read, its queue (4 notifications here)
// drops the oldest. When it is back it gets the OVERFLOW, subscribes
// again, and reports each resource whose change was dropped as
// CHANGED_WHILE_AWAY, ending with every etag current.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import WebSocket from 'ws';
import { createClient } from '../dist/index.js';
import { Proxy, record, startGateway, waitFor } from './gateway.mjs';

let gw, proxy;
before(async () => {
  gw = await startGateway();
  await gw.stop();
  const config = join(gw.dir, 'small-queues.yaml');
  writeFileSync(config, 'queues:\n  buffer_size: 4\n  retain_delivered: 4\n');
  gw.extra.push('--config', config);
  await gw.start();
  proxy = await new Proxy(gw.url).start();
});
after(async () => {
  await proxy?.stop();
  await gw?.stop();
});

test('OVERFLOW: subscribe again and report what was dropped', async (t) => {
  const client = createClient({ url: proxy.url, token: () => gw.token('alice', 'slow'), webSocketImpl: WebSocket, maxBackoffMs: 300 });
  t.after(() => client.close());
  const a = client.watch('user:alice/a');
  const b = client.watch('user:alice/b');
  const [ea, eb] = [record(a), record(b)];
  const overflows = [];
  client.on('invite', (ev) => ev.kind === 'OVERFLOW' && overflows.push(ev));
  await Promise.all([a.ready, b.ready]);
  await waitFor(() => client.state === 'live', 'live');

  proxy.mode = 'down';
  proxy.cut();
  await waitFor(() => client.state === 'recovering', 'recovering');
  await gw.publish('user:alice/b', 'b1'); // the oldest: dropped
  for (let i = 1; i <= 10; i++) await gw.publish('user:alice/a', `a${i}`);
  proxy.mode = 'pass';

  await waitFor(() => overflows.length === 1, 'OVERFLOW');
  await waitFor(() => a.etag === 'a10' && b.etag === 'b1', () => `etags a=${a.etag} b=${b.etag}`);
  const away = await waitFor(() => eb.find((e) => e.kind === 'CHANGED_WHILE_AWAY'), "b's dropped change reported");
  assert.equal(away.etag, 'b1');
  assert.equal(ea.at(-1).etag, 'a10');
  assert.ok(client.stats().resubscribes >= 2);
  assert.equal(client.stats().queuesCreated, 1);
});

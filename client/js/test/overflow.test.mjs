// OVERFLOW: while the client cannot read, its queue (4 notifications here)
// drops the oldest. When it is back it gets the OVERFLOW, then what is
// still queued: newer than what was dropped, but not newer than what a
// subscribe answers now. It subscribes again naming the etags it holds,
// and takes nothing from the answers: a RESYNC after what is queued
// brings each resource that moved to its current etag. No watch goes
// back, and each ends current.
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

/** SlowWebSocket hands each message to the client delayMs after the
 * previous one (a slow link): a subscribe's answer, over HTTP, comes
 * before the notifications queued behind the OVERFLOW. */
class SlowWebSocket extends WebSocket {
  static delayMs = 0;
  set onmessage(fn) {
    let chain = Promise.resolve();
    super.onmessage = fn && ((ev) => {
      const ms = SlowWebSocket.delayMs;
      chain = chain.then(() => ms && new Promise((r) => setTimeout(r, ms))).then(() => fn(ev));
    });
  }
  get onmessage() {
    return super.onmessage;
  }
}

test('OVERFLOW: subscribe again; no watch goes back, each ends current', async (t) => {
  const client = createClient({ url: proxy.url, token: () => gw.token('alice', 'slow'), webSocketImpl: SlowWebSocket, maxBackoffMs: 300 });
  t.after(() => client.close());
  const a = client.watch('user:alice/a');
  const b = client.watch('user:alice/b');
  const [ea, eb] = [record(a), record(b)];
  const overflows = [];
  client.on('invite', (ev) => ev.kind === 'OVERFLOW' && overflows.push(ev));
  await Promise.all([a.ready, b.ready]);
  await waitFor(() => client.state === 'live', 'live');
  await gw.publish('user:alice/a', 'a1');
  await waitFor(() => a.etag === 'a1', 'a1');

  proxy.mode = 'down';
  proxy.cut();
  await waitFor(() => client.state === 'recovering', 'recovering');
  await gw.publish('user:alice/b', 'b1'); // the oldest: dropped
  for (let i = 2; i <= 10; i++) await gw.publish('user:alice/a', `a${i}`); // a7..a10 stay queued
  SlowWebSocket.delayMs = 200;
  proxy.mode = 'pass';

  await waitFor(() => overflows.length === 1, 'OVERFLOW');
  await waitFor(() => ea.at(-1)?.etag === 'a10' && eb.at(-1)?.etag === 'b1', () => `a: ${trace(ea)}; b: ${trace(eb)}`);
  SlowWebSocket.delayMs = 0;
  // Once a change made now is in, everything queued before it is.
  await gw.publish('user:alice/a', 'a11');
  await waitFor(() => ea.at(-1)?.etag === 'a11', () => `a11; a: ${trace(ea)}`);
  t.diagnostic(`a: ${trace(ea)}; b: ${trace(eb)}`);
  for (const [name, evs] of [['a', ea], ['b', eb]]) {
    let prev = 0;
    for (const ev of evs) {
      assert.ok(['CHANGED', 'RESYNC', 'CHANGED_WHILE_AWAY'].includes(ev.kind), `${name}: ${trace(evs)}`);
      const v = Number(ev.etag.slice(1));
      assert.ok(v >= prev, `${name} went back to ${ev.kind}(${ev.etag}): ${trace(evs)}`);
      prev = v;
    }
  }
  assert.equal(a.etag, 'a11');
  assert.equal(b.etag, 'b1');
  assert.ok(client.stats().resubscribes >= 2);
  assert.equal(client.stats().queuesCreated, 1);
});

// The RESYNC that a subscribe after an OVERFLOW makes is all that brings
// back a resource whose every change was dropped. When that subscribe
// fails (here the gateway, through the proxy, answers UNAVAILABLE twice,
// as while the cluster changes), it must be made again: else the watch
// stays behind for good.
test('OVERFLOW: a subscribe again that fails is retried', async (t) => {
  let refused = 0;
  proxy.answer = ({ query, variables }) => {
    if (!query.includes('subscribe(queue') || variables.resource !== 'user:alice/d' || !variables.knownEtag || refused >= 2) return undefined;
    refused++;
    return { errors: [{ message: 'the cluster is changing', extensions: { code: 'UNAVAILABLE' } }] };
  };
  t.after(() => (proxy.answer = undefined));
  await gw.publish('user:alice/d', 'd1');
  const client = createClient({ url: proxy.url, token: () => gw.token('alice', 'retry'), webSocketImpl: WebSocket, maxBackoffMs: 300 });
  t.after(() => client.close());
  const d = client.watch('user:alice/d');
  const x = client.watch('user:alice/x');
  const ed = record(d);
  const overflows = [];
  client.on('invite', (ev) => ev.kind === 'OVERFLOW' && overflows.push(ev));
  await Promise.all([d.ready, x.ready]);
  await waitFor(() => client.state === 'live', 'live');
  assert.equal(d.etag, 'd1');

  proxy.mode = 'down';
  proxy.cut();
  await waitFor(() => client.state === 'recovering', 'recovering');
  await gw.publish('user:alice/d', 'd2'); // dropped
  for (let i = 1; i <= 8; i++) await gw.publish('user:alice/x', `x${i}`);
  proxy.mode = 'pass';

  await waitFor(() => overflows.length === 1, 'OVERFLOW');
  await waitFor(() => d.etag === 'd2', () => `d at d2 after ${refused} refusals; d: ${trace(ed)}`);
  assert.equal(refused, 2);
  assert.deepEqual(ed.map((e) => `${e.kind}(${e.etag})`), ['RESYNC(d2)']);
});

const trace = (evs) => evs.map((e) => `${e.kind}(${e.etag})`).join(' ');

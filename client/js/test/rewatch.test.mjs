// A resource watched, closed and watched again on the same queue: the
// queue may still hold notifications for the first watch that the client
// has not read, older than what the new watch's subscribe answered. The
// new watch must never see them.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import WebSocket from 'ws';
import { createClient } from '../dist/index.js';
import { record, startGateway, waitFor } from './gateway.mjs';

let gw;
before(async () => {
  gw = await startGateway();
});
after(async () => {
  await gw?.stop();
});

/** HeldWebSocket hands messages to the client only once gate (a promise,
 * when set) resolves: what the gateway sends meanwhile stays unread. */
class HeldWebSocket extends WebSocket {
  static gate = undefined;
  set onmessage(fn) {
    let chain = Promise.resolve();
    super.onmessage = fn && ((ev) => {
      const gate = HeldWebSocket.gate;
      chain = chain.then(() => gate).then(() => fn(ev));
    });
  }
  get onmessage() {
    return super.onmessage;
  }
}

test('a watch made again sees nothing older than its subscribe answered', async (t) => {
  const client = createClient({ url: gw.url, token: () => gw.token('alice', 'again'), webSocketImpl: HeldWebSocket });
  t.after(() => client.close());
  const r = 'user:alice/again';
  const w = client.watch(r);
  await w.ready;
  await waitFor(() => client.state === 'live', 'live');
  await gw.publish(r, 'r1');
  await waitFor(() => w.etag === 'r1', 'r1');

  let release;
  HeldWebSocket.gate = new Promise((res) => (release = res));
  await gw.publish(r, 'r2'); // queued for w, unread
  await gw.publish(r, 'r3');
  await w.close();
  await gw.publish(r, 'r4');
  const w2 = client.watch(r);
  const evs = record(w2);
  await w2.ready;
  assert.equal(w2.etag, 'r4');
  HeldWebSocket.gate = undefined;
  release();
  await gw.publish(r, 'r5');
  await waitFor(() => evs.at(-1)?.etag === 'r5', () => `r5; the new watch saw ${trace(evs)}`);
  t.diagnostic(`the new watch saw ${trace(evs)}`);
  for (const ev of evs) assert.ok(Number(ev.etag.slice(1)) >= 4, `the new watch went back from r4 to ${ev.kind}(${ev.etag}): ${trace(evs)}`);
  assert.equal(w2.etag, 'r5');
});

const trace = (evs) => evs.map((e) => `${e.kind}(${e.etag})`).join(' ');

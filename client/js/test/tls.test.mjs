// Over TLS, as users run it: the gateway's development certificate, trusted
// through NODE_EXTRA_CA_CERTS by a Node process that uses the SDK over
// https: and wss:.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { Gateway, freePort, meshgateBinary, waitFor } from './gateway.mjs';

let gw, out = '';
before(async () => {
  const bin = await meshgateBinary();
  const dir = mkdtempSync(join(tmpdir(), 'meshgate-js-tls-'));
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  const ip = `127.0.0.${2 + Math.floor(Math.random() * 14)}`; // the development certificate names 127.0.0.1-16
  gw = new Gateway(bin, dir, ip, await freePort(ip), []);
  gw.proc = spawn(bin, ['serve', '--listen', `${ip}:${gw.port}`, '--data-dir', dir, '--log-level', 'warn'], { stdio: ['ignore', 'pipe', 'pipe'] });
  gw.exited = new Promise((r) => gw.proc.once('exit', r));
  gw.proc.stdout.on('data', (b) => (out += b));
  gw.proc.stderr.on('data', (b) => (out += b));
  await waitFor(() => out.includes('meshgate: serving https://'), 'the TLS gateway', 30_000);
  gw.url = `https://${ip}:${gw.port}/graphql`;
});
after(async () => {
  await gw?.stop();
});

const child = String.raw`
import WebSocket from 'ws';
import { createClient } from '../dist/index.js';
const { URL: url, TOKEN, PUBLISH } = process.env;
const client = createClient({ url, token: TOKEN, webSocketImpl: WebSocket });
const w = client.watch('user:alice/tls');
await w.ready;
await new Promise((r) => client.state === 'live' ? r() : client.on('state', (s) => s === 'live' && r()));
const got = new Promise((r) => w.on('CHANGED', r));
await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer ' + PUBLISH },
  body: JSON.stringify({ query: 'mutation { publish(resource: "user:alice/tls", etag: "t1") }' }) });
const ev = await got;
console.log(JSON.stringify({ etag: ev.etag, transport: client.transport, url: client.stats().url }));
await client.close();
`;

test('https and wss with the development certificate', async () => {
  await waitFor(async () => {
    const env = { ...process.env, URL: gw.url, TOKEN: await gw.token('alice', 'tls'), PUBLISH: await gw.token('pub', 'tls', { scopes: ['publish'] }), NODE_EXTRA_CA_CERTS: join(gw.dir, 'tls-cert.pem') };
    const p = spawn(process.execPath, ['--input-type=module', '-e', child], { cwd: import.meta.dirname, env, stdio: ['ignore', 'pipe', 'inherit'], timeout: 30_000 });
    let stdout = '';
    p.stdout.on('data', (b) => (stdout += b));
    const code = await new Promise((r) => p.once('exit', r));
    assert.equal(code, 0, stdout);
    const r = JSON.parse(stdout.trim());
    assert.deepEqual(r, { etag: 't1', transport: 'websocket', url: gw.url });
    return true;
  }, 'the Node client over TLS', 60_000);
});

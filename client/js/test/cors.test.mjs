// The example page served from another origin than the gateway's, as
// `npx serve examples/web` serves it, in headless Chromium: with
// --cors-allowed-origins naming that origin, the page watches a folder and
// shows a dropped file; a page from an origin not listed cannot call the
// gateway (no CORS headers, WebSocket upgrade refused with 403).
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { extname, join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { chromium } from 'playwright-core';
import { freePort, loopbackIP, shareFolder, startGateway } from './gateway.mjs';

const executablePath = process.env.CHROMIUM ?? '/usr/bin/chromium';
const skip = !existsSync(executablePath) && process.env.MESHGATE_REQUIRE_BROWSER !== '1' ? `no Chromium at ${executablePath}` : false;
const flags = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const webDir = resolve(import.meta.dirname, '../../../examples/web');
const types = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css' };

/** staticSite serves examples/web at / on its own port, as `npx serve` does. */
async function staticSite() {
  const ip = loopbackIP();
  const port = await freePort(ip);
  const server = createServer((req, res) => {
    const path = new URL(req.url, 'http://x').pathname;
    const name = path === '/' ? 'index.html' : path.slice(1);
    if (!/^[a-z-]+\.(html|js|css)$/.test(name) || !existsSync(join(webDir, name))) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': types[extname(name)] }).end(readFileSync(join(webDir, name)));
  });
  await new Promise((r) => server.listen(port, ip, r));
  return { origin: `http://${ip}:${port}`, stop: () => new Promise((r) => server.close(r)) };
}

let gw, folder, site, other;
const profiles = [];
before(async () => {
  if (skip) return;
  site = await staticSite();
  other = await staticSite();
  gw = await startGateway({ extra: ['--cors-allowed-origins', site.origin] });
  folder = await shareFolder(gw, 'photos', ['alice']);
});
after(async () => {
  await gw?.stop();
  await site?.stop();
  await other?.stop();
  for (const d of profiles) rmSync(d, { recursive: true, force: true });
});

async function browser(t) {
  const dir = mkdtempSync(join(tmpdir(), 'meshgate-chromium-'));
  profiles.push(dir);
  const ctx = await chromium.launchPersistentContext(dir, { executablePath, headless: true, args: flags });
  t.after(() => ctx.close());
  return ctx.pages()[0] ?? (await ctx.newPage());
}

test('the example page on an allowed origin watches a folder on the gateway and shows a dropped file', { skip }, async (t) => {
  assert.notEqual(new URL(site.origin).origin, gw.origin);
  const page = await browser(t);
  const errors = [];
  page.on('pageerror', (e) => errors.push(e));
  await page.goto(`${site.origin}/`);
  await page.fill('#url', gw.url);
  await page.fill('#token', await gw.token('alice', 'cross-origin'));
  await page.fill('#folder', 'photos');
  await page.fill('#people', '');
  await page.click('button[type=submit]');
  await page.waitForFunction(() => window.meshgateClient?.state === 'live', null, { timeout: 20_000 });
  assert.equal(await page.evaluate(() => window.meshgateClient.transport), 'websocket');
  writeFileSync(join(folder, 'from-another-origin.jpg'), 'jpeg');
  await page.waitForFunction(() => document.getElementById('files').innerText.includes('from-another-origin.jpg'), null, { timeout: 20_000 });
  assert.match(await page.locator('#log').innerText(), /CHANGED #\d+ storage:folders\/photos/);
  // The page's script can read Retry-After and the request id (Expose-Headers).
  const exposed = await page.evaluate(async (url) => {
    const r = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"query":"{ me { user } }"}' });
    return { status: r.status, requestID: r.headers.get('x-request-id'), challenge: r.headers.get('www-authenticate') };
  }, gw.url);
  assert.equal(exposed.status, 401);
  assert.ok(exposed.requestID && exposed.challenge, JSON.stringify(exposed));
  assert.deepEqual(errors, []);
});

test('a page on an origin not listed cannot call the gateway', { skip }, async (t) => {
  const page = await browser(t);
  await page.goto(`${other.origin}/`);
  const token = await gw.token('alice', 'elsewhere');
  const got = await page.evaluate(
    async ({ url, token }) => {
      let fetched;
      try {
        await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: '{"query":"{ me { user } }"}' });
        fetched = 'read';
      } catch (e) {
        fetched = e.name;
      }
      const closed = await new Promise((res) => {
        const ws = new WebSocket(url.replace(/^http/, 'ws'), 'graphql-transport-ws');
        ws.onopen = () => res('open');
        ws.onclose = (e) => res(`closed ${e.code}`);
      });
      return { fetched, closed };
    },
    { url: gw.url, token },
  );
  // fetch fails its CORS check (TypeError); the upgrade is refused (a
  // browser reports a failed handshake as close 1006).
  assert.deepEqual(got, { fetched: 'TypeError', closed: 'closed 1006' });
});

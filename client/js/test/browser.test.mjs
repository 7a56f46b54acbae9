// The example page (examples/web, served by `meshgate serve --examples`)
// in headless Chromium: the bundled SDK receives a notification, a reload
// mid-stream resumes from localStorage with no duplicate, a cut network
// recovers, and a screenshot after a file was dropped shows its name.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { execFile } from 'node:child_process';
import { tmpdir } from 'node:os';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { chromium } from 'playwright-core';
import { Proxy, shareFolder, startGateway, waitFor } from './gateway.mjs';

const run = promisify(execFile);
const executablePath = process.env.CHROMIUM ?? '/usr/bin/chromium';
const skip = !existsSync(executablePath) && process.env.MESHGATE_REQUIRE_BROWSER !== '1' ? `no Chromium at ${executablePath}` : false;
const flags = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

let gw, folder, proxy;
const profiles = [];
before(async () => {
  if (skip) return;
  gw = await startGateway({ extra: ['--examples'] });
  folder = await shareFolder(gw, 'photos', ['alice', 'bob']);
  proxy = await new Proxy(gw.url).start();
});
after(async () => {
  await proxy?.stop();
  await gw?.stop();
  for (const d of profiles) rmSync(d, { recursive: true, force: true });
});

/** open signs in on the example page at origin in a fresh profile. */
async function open(t, origin, device) {
  const dir = mkdtempSync(join(tmpdir(), 'meshgate-chromium-'));
  profiles.push(dir);
  const ctx = await chromium.launchPersistentContext(dir, { executablePath, headless: true, args: flags, viewport: { width: 1000, height: 700 } });
  t.after(() => ctx.close());
  const page = ctx.pages()[0] ?? (await ctx.newPage());
  const errors = [];
  page.on('pageerror', (e) => errors.push(e));
  await page.goto(`${origin}/examples/`);
  await page.fill('#url', `${origin}/graphql`);
  await page.fill('#token', await gw.token('alice', device));
  await page.fill('#folder', 'photos');
  await page.fill('#people', 'bob');
  await page.click('button[type=submit]');
  await live(page);
  return { page, errors };
}

const live = (page) => page.waitForFunction(() => window.meshgateClient?.state === 'live', null, { timeout: 20_000 });
const shown = (page) => page.evaluate(() => window.meshgateEvents.map((e) => ({ seq: e.seq, kind: e.kind, etag: e.etag, added: (e.payload?.added ?? []).map((a) => a.path) })));

test('the example page shows a dropped file, and a screenshot shows its name', { skip }, async (t) => {
  const { page, errors } = await open(t, gw.origin, 'browser');
  assert.equal(await page.evaluate(() => window.meshgateClient.transport), 'websocket');
  writeFileSync(join(folder, 'holiday-beach.jpg'), 'jpeg');
  await page.waitForFunction(() => window.meshgateEvents.some((e) => e.payload?.added?.some((a) => a.path === 'holiday-beach.jpg')), null, { timeout: 20_000 });
  // Bob's phone comes online: the page lists him (alice may see him: they share the folder).
  const bob = await gw.token('bob', 'phone');
  await gw.gql(bob, 'mutation { createQueue(ttlSeconds: 60) { name } }');
  await page.waitForFunction(() => document.getElementById('people-online').innerText.includes('bob: phone'), null, { timeout: 20_000 });
  const files = page.locator('#files');
  assert.match(await files.innerText(), /holiday-beach\.jpg/);
  assert.match(await page.locator('#log').innerText(), /CHANGED #\d+ storage:folders\/photos/);
  const shot = join(process.env.MESHGATE_SCREENSHOT_DIR ?? tmpdir(), 'meshgate-example.png');
  await page.screenshot({ path: shot });
  const png = readFileSync(shot);
  assert.equal(png.subarray(1, 4).toString(), 'PNG');
  // The file's name is drawn inside the screenshot's area.
  const box = await files.getByText('holiday-beach.jpg').boundingBox();
  assert.ok(box && box.width > 0 && box.height > 0 && box.y + box.height <= 700, `file name not on screen: ${JSON.stringify(box)}`);
  t.diagnostic(`screenshot: ${shot}`);
  // Read the picture as a person would: OCR (Debian's tesseract-ocr) finds the name in it.
  if (existsSync('/usr/bin/tesseract') || process.env.MESHGATE_REQUIRE_BROWSER === '1') {
    const { stdout } = await run('tesseract', [shot, '-']);
    assert.match(stdout, /holiday-beach\. ?jpg/, `OCR of the screenshot:\n${stdout}`);
  } else {
    t.diagnostic('no tesseract: the screenshot was not read');
  }
  assert.deepEqual(errors, []);
});

test("the README's ten lines, pasted into a page, show live notifications", { skip }, async (t) => {
  const readme = readFileSync(join(import.meta.dirname, '..', 'README.md'), 'utf8');
  const snippet = readme.match(/```html\n([\s\S]*?)```/)[1];
  assert.ok(snippet.split('\n').filter(Boolean).length <= 10, snippet);
  const html = snippet.replace('https://localhost:8443/graphql', gw.url).replace('PASTE-A-TOKEN', await gw.token('alice', 'readme'));
  const dir = mkdtempSync(join(tmpdir(), 'meshgate-chromium-'));
  profiles.push(dir);
  const ctx = await chromium.launchPersistentContext(dir, { executablePath, headless: true, args: flags });
  t.after(() => ctx.close());
  const page = ctx.pages()[0] ?? (await ctx.newPage());
  const logs = [];
  page.on('console', (m) => logs.push(m.text()));
  // The page is served from the gateway's origin, beside meshgate-client.js.
  await page.route(`${gw.origin}/examples/readme.html`, (r) => r.fulfill({ contentType: 'text/html', body: html }));
  await page.goto(`${gw.origin}/examples/readme.html`);
  await waitFor(() => logs.includes('meshgate live'), () => `"meshgate live" in the console: ${logs}`);
  writeFileSync(join(folder, 'from-the-readme.txt'), 'hello');
  await waitFor(() => logs.some((l) => l.startsWith('CHANGED storage:folders/photos')), () => `a CHANGED in the console: ${logs}`);
});

test('a reload mid-stream resumes the same queue from localStorage, with no duplicate', { skip }, async (t) => {
  const { page, errors } = await open(t, gw.origin, 'tablet');
  const queue = await page.evaluate(() => window.meshgateClient.queue);
  const names = Array.from({ length: 8 }, (_, i) => `reload-${i}.txt`);
  // Files land one after another while the page reloads in the middle.
  const writer = (async () => {
    for (const n of names) {
      writeFileSync(join(folder, n), n);
      await new Promise((r) => setTimeout(r, 250));
    }
  })();
  await page.waitForFunction(() => window.meshgateEvents.some((e) => e.payload?.added?.length), null, { timeout: 20_000 });
  await page.reload();
  await live(page);
  await writer;
  const seen = async () => new Set((await shown(page)).flatMap((e) => e.added));
  await waitFor(async () => {
    const s = await seen();
    return names.every((n) => s.has(n));
  }, 'every file shown');
  const events = await shown(page);
  const seqs = events.map((e) => e.seq);
  assert.deepEqual(seqs, [...new Set(seqs)].sort((a, b) => a - b), `duplicate or out-of-order seqs: ${seqs}`);
  const added = events.flatMap((e) => e.added);
  assert.deepEqual(added, [...new Set(added)], `a file shown twice: ${added}`);
  assert.equal(await page.evaluate(() => window.meshgateClient.queue), queue, 'the reload made a new queue');
  assert.equal(await page.evaluate(() => window.meshgateClient.stats().queuesCreated), 0);
  assert.deepEqual(errors, []);
});

test('the network is cut under the page and it recovers', { skip }, async (t) => {
  const origin = new URL(proxy.url).origin;
  const { page, errors } = await open(t, origin, 'phone');
  proxy.cut();
  writeFileSync(join(folder, 'after-the-cut.txt'), 'x');
  await page.waitForFunction(() => window.meshgateEvents.some((e) => e.payload?.added?.some((a) => a.path === 'after-the-cut.txt')), null, { timeout: 30_000 });
  await live(page);
  assert.ok((await page.evaluate(() => window.meshgateClient.stats().reconnects)) >= 1);
  assert.deepEqual(errors, []);
});

test('behind a proxy that refuses WebSocket, the page falls back to SSE and still shows files', { skip }, async (t) => {
  proxy.mode = 'refuse-ws';
  t.after(() => (proxy.mode = 'pass'));
  const origin = new URL(proxy.url).origin;
  const dir = mkdtempSync(join(tmpdir(), 'meshgate-chromium-'));
  profiles.push(dir);
  const ctx = await chromium.launchPersistentContext(dir, { executablePath, headless: true, args: flags });
  t.after(() => ctx.close());
  const page = ctx.pages()[0] ?? (await ctx.newPage());
  await page.goto(`${origin}/examples/`);
  await page.fill('#url', `${origin}/graphql`);
  await page.fill('#token', await gw.token('alice', 'office-browser'));
  await page.click('button[type=submit]');
  await page.waitForFunction(() => window.meshgateClient?.state === 'live' && window.meshgateClient.transport === 'sse', null, { timeout: 30_000 });
  writeFileSync(join(folder, 'through-the-proxy.txt'), 'x');
  await page.waitForFunction(() => document.getElementById('files').innerText.includes('through-the-proxy.txt'), null, { timeout: 20_000 });
});

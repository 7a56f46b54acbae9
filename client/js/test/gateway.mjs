// Test helpers: a real meshgate (the repo's binary, built once per test
// file), tokens minted by its `token` command, a proxy that can refuse
// WebSocket or SSE and cut connections, and waiting with a deadline.
import { execFile, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, request } from 'node:http';
import { connect, createServer as netServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const repo = resolve(import.meta.dirname, '../../..');
let built;

/** meshgateBinary builds ./cmd/meshgate once (or uses $MESHGATE_BIN). */
export function meshgateBinary() {
  if (process.env.MESHGATE_BIN) return Promise.resolve(process.env.MESHGATE_BIN);
  built ??= (async () => {
    const dir = mkdtempSync(join(tmpdir(), 'meshgate-js-bin-'));
    const bin = join(dir, 'meshgate');
    await run('go', ['build', '-o', bin, './cmd/meshgate'], { cwd: repo, maxBuffer: 1 << 24 });
    process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
    return bin;
  })();
  return built;
}

/** freePort picks a port the kernel considers free on ip. */
export function freePort(ip = '127.0.0.1') {
  return new Promise((res, rej) => {
    const s = netServer();
    s.on('error', rej);
    s.listen(0, ip, () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

/** loopbackIP picks a 127.0.0.x address for one gateway. */
export function loopbackIP() {
  return `127.0.0.${20 + Math.floor(Math.random() * 200)}`;
}

/** waitFor polls fn until it returns a truthy value, or fails after ms
 * with what and fn's last error. */
export async function waitFor(fn, what, ms = 20_000) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${typeof what === 'function' ? what() : what}${last ? `: ${last}` : ''}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Gateway is one `meshgate serve` process over plain HTTP on loopback. */
export class Gateway {
  constructor(bin, dir, ip, port, extra) {
    Object.assign(this, { bin, dir, ip, port, extra });
    this.url = `http://${ip}:${port}/graphql`;
    this.origin = `http://${ip}:${port}`;
  }

  /** start launches the gateway and waits until /readyz says ready. */
  async start() {
    const args = ['serve', '--insecure-http', '--listen', `${this.ip}:${this.port}`, '--data-dir', this.dir, '--log-level', 'warn', ...this.extra];
    this.proc = spawn(this.bin, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    this.stderr = '';
    this.proc.stderr.on('data', (b) => (this.stderr += b));
    const exited = new Promise((r) => this.proc.once('exit', r));
    this.exited = exited;
    await waitFor(async () => {
      if (this.proc.exitCode !== null) throw new Error(`meshgate exited: ${this.stderr}`);
      const r = await fetch(`${this.origin}/readyz`);
      return r.ok;
    }, `meshgate ready at ${this.origin}`, 30_000);
    return this;
  }

  /** stop ends the gateway (SIGTERM, SIGKILL after 10 s). */
  async stop(signal = 'SIGTERM') {
    if (!this.proc || this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    this.proc.kill(signal);
    const t = setTimeout(() => this.proc.kill('SIGKILL'), 10_000);
    await this.exited;
    clearTimeout(t);
  }

  /** token mints a token with the gateway's development key. */
  async token(user, device, { ttl = '1h', scopes = [] } = {}) {
    const args = ['token', '--data-dir', this.dir, '--user', user, '--device', device, '--ttl', ttl];
    for (const s of scopes) args.push('--scope', s);
    const { stdout } = await run(this.bin, args);
    return stdout.trim();
  }

  /** gql runs one operation as token and returns its data (throws on errors). */
  async gql(token, query, variables = {}) {
    const r = await fetch(this.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({ query, variables }),
    });
    const body = await r.json();
    if (body.errors) throw Object.assign(new Error(body.errors[0].message), { code: body.errors[0].extensions?.code });
    return body.data;
  }

  /** publish reports resource at etag, as a publisher would. */
  async publish(resource, etag, payload = null) {
    this.publisher ??= await this.token('publisher', 'test', { scopes: ['publish'] });
    return (await this.gql(this.publisher, 'mutation($r:String!,$e:String!,$p:JSON){ publish(resource:$r, etag:$e, payload:$p) }', { r: resource, e: etag, p: payload })).publish;
  }
}

/** startGateway starts a gateway in a fresh data directory (removed at exit). */
export async function startGateway({ dir, extra = [] } = {}) {
  const bin = await meshgateBinary();
  dir ??= mkdtempSync(join(tmpdir(), 'meshgate-js-data-'));
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  const gw = new Gateway(bin, dir, loopbackIP(), await freePort(), extra);
  return gw.start();
}

/** startCluster starts n nodes on distinct 127.0.0.x addresses sharing
 * one data directory (so one development key and cluster CA), each joining
 * the first, and waits until each is ready. */
export async function startCluster(n) {
  const bin = await meshgateBinary();
  const dir = mkdtempSync(join(tmpdir(), 'meshgate-js-cluster-'));
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  const base = 20 + Math.floor(Math.random() * 200);
  const nodes = [];
  let seed;
  for (let i = 0; i < n; i++) {
    const ip = `127.0.0.${((base + i * 7) % 230) + 20}`;
    const gossip = `${ip}:${await freePort(ip)}`;
    const extra = ['--node-name', `n${i + 1}`, '--bind', gossip, '--rpc', `${ip}:${await freePort(ip)}`, ...(seed ? ['--join', seed] : [])];
    seed ??= gossip;
    nodes.push(await new Gateway(bin, dir, ip, await freePort(ip), extra).start());
  }
  return nodes;
}

/** Proxy forwards HTTP and WebSocket to a gateway. mode "refuse-ws"
 * answers upgrades with 403; "refuse-streams" also answers requests asking
 * for text/event-stream with 403 (as some corporate proxies do); "down"
 * answers everything with 502 (the gateway is unreachable). cut()
 * destroys every open connection (the network drops). */
export class Proxy {
  mode = 'pass';
  /** answer, if set, sees each POSTed operation ({query, variables}) and
   * returns the JSON body to answer it with instead of the gateway, or
   * undefined to pass it on; or a promise of either, to hold it until
   * then. */
  answer = undefined;
  #sockets = new Set();
  #websockets = new Set(); // {up, sock} of each WebSocket passed through

  constructor(target) {
    this.target = new URL(target);
  }

  async start() {
    const t = this.target;
    this.server = createServer((req, res) => {
      if (this.mode === 'down') {
        res.writeHead(502, { 'content-type': 'text/plain' }).end('the gateway is unreachable');
        return;
      }
      if (this.mode === 'refuse-streams' && (req.headers.accept ?? '').includes('text/event-stream')) {
        res.writeHead(403, { 'content-type': 'text/plain' }).end('streams are not allowed here');
        return;
      }
      const forward = (body) => {
        const up = request({ host: t.hostname, port: t.port, method: req.method, path: req.url, headers: req.headers }, (ur) => {
          res.writeHead(ur.statusCode, ur.headers);
          ur.pipe(res);
        });
        up.on('error', () => res.destroy());
        res.on('close', () => up.destroy());
        if (body) up.end(body);
        else req.pipe(up);
      };
      if (!this.answer || req.method !== 'POST') return forward();
      const chunks = [];
      req.on('data', (c) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        let op;
        try {
          op = JSON.parse(body);
        } catch {}
        const answered = (a) => {
          if (a === undefined) return forward(body);
          res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(a));
        };
        const a = op && this.answer(op);
        if (a instanceof Promise) a.then(answered, () => res.destroy());
        else answered(a);
      });
    });
    this.server.on('connection', (s) => {
      this.#sockets.add(s);
      s.on('close', () => this.#sockets.delete(s));
    });
    this.server.on('upgrade', (req, sock, head) => {
      if (this.mode !== 'pass') {
        sock.end('HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
        return;
      }
      const up = connect(Number(t.port), t.hostname, () => {
        let h = `${req.method} ${req.url} HTTP/1.1\r\n`;
        for (let i = 0; i < req.rawHeaders.length; i += 2) h += `${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}\r\n`;
        up.write(h + '\r\n');
        if (head.length) up.write(head);
        up.pipe(sock);
        sock.pipe(up);
        const pair = { up, sock };
        this.#websockets.add(pair);
        up.on('close', () => this.#websockets.delete(pair));
      });
      this.#sockets.add(up);
      up.on('close', () => (this.#sockets.delete(up), sock.destroy()));
      up.on('error', () => sock.destroy());
      sock.on('error', () => up.destroy());
      sock.on('close', () => up.destroy());
    });
    await new Promise((r) => this.server.listen(0, loopbackIP(), r));
    const { address, port } = this.server.address();
    this.url = `http://${address}:${port}/graphql`;
    return this;
  }

  /** closeWebSockets ends every WebSocket through the proxy with a close
   * frame of its own (code, reason), as a gateway that refuses a token
   * mid-stream would, and drops the gateway's side. Call it while nothing
   * is in flight, so the frame does not land inside one of the gateway's. */
  closeWebSockets(code, reason) {
    const r = Buffer.from(reason);
    const frame = Buffer.concat([Buffer.from([0x88, 2 + r.length, code >> 8, code & 0xff]), r]);
    for (const { up, sock } of this.#websockets) {
      up.unpipe(sock);
      sock.end(frame);
      up.destroy();
    }
    this.#websockets.clear();
  }

  /** cut destroys every open connection through the proxy. */
  cut() {
    for (const s of this.#sockets) s.destroy();
  }

  async stop() {
    this.cut();
    await new Promise((r) => this.server.close(r));
  }
}

/** shareFolder makes storage folder name with members, and waits until the
 * storage publisher lets the first member subscribe to it. */
export async function shareFolder(gw, name, members) {
  const dir = join(gw.dir, 'storage', name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, '.members'), members.join('\n') + '\n');
  const tok = await gw.token(members[0], 'setup');
  const { createQueue } = await gw.gql(tok, 'mutation { createQueue(ttlSeconds: 60) { name } }');
  await waitFor(
    () => gw.gql(tok, 'mutation($q:String!,$r:String!){ subscribe(queue:$q, resource:$r) { etag } }', { q: createQueue.name, r: `storage:folders/${name}` }),
    `folder ${name} shared`,
  );
  await gw.gql(tok, 'mutation($q:String!){ deleteQueue(name:$q) }', { q: createQueue.name });
  return dir;
}

/** recorder collects a watch's events. */
export function record(watch) {
  const events = [];
  watch.on('event', (ev) => events.push(ev));
  return events;
}

// A meshgate publisher plugin in JavaScript, following PLUGINS.md's wire
// contract step by step. It owns the `node:` scheme. Everyone may read
// `node:<anything>` except the user "mallory". It accepts `publish` and
// reports each published change back through Watch, counting versions.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import grpc from '@grpc/grpc-js';
import protoLoader from '@grpc/proto-loader';
import selfsigned from 'selfsigned';

const log = (msg, attrs = {}) => process.stderr.write(JSON.stringify({ level: 'INFO', msg, ...attrs }) + '\n');

// 1. The magic cookie: refuse to run unless the gateway started us.
if (process.env.MESHGATE_PLUGIN !== 'publisher-v1') {
  process.stderr.write('this is a meshgate plugin: meshgate starts it, not you\n');
  process.exit(1);
}

const dir = path.join(path.dirname(fileURLToPath(import.meta.url)), 'proto');
const load = (f) => grpc.loadPackageDefinition(protoLoader.loadSync(path.join(dir, f), { keepCase: false, longs: Number, defaults: true, oneofs: true }));
const pub = load('publisher.proto').meshgate.publisher.v1;
const controller = load('grpc_controller.proto').plugin;
const health = load('health.proto').grpc.health.v1;

const versions = new Map(); // resource → count
const watchers = new Set();
const etag = (r) => String(versions.get(r) ?? 0);

// 2. The contract, health ("plugin" SERVING) and the controller's Shutdown.
const server = new grpc.Server();
server.addService(pub.Publisher.service, {
  Describe: (_call, cb) => cb(null, { name: 'node-demo', version: '0.1.0', schemes: ['node'] }),
  Authorize: (call, cb) => {
    const { principal, resource } = call.request;
    if (principal.user === 'mallory') return cb(null, { allowed: false, reason: 'mallory may not read ' + resource });
    cb(null, { allowed: true, etag: etag(resource) });
  },
  Current: (call, cb) => cb(null, { etags: Object.fromEntries(call.request.resources.map((r) => [r, etag(r)])) }),
  Watch: (call) => {
    watchers.add(call);
    call.on('cancelled', () => watchers.delete(call));
  },
  Publish: (call, cb) => {
    const { resource, payload } = call.request;
    versions.set(resource, (versions.get(resource) ?? 0) + 1);
    // Report through Watch (the same path as any change), return no events.
    for (const w of watchers) w.write({ kind: 'CHANGED', resource, etag: etag(resource), payload, timeUnixNano: Date.now() * 1e6 });
    log('published', { resource, etag: etag(resource) });
    cb(null, { events: [] });
  },
  Host: (call) => {
    call.on('data', (m) => { if (m.session) log('session', { user: m.session.principal.user, online: m.session.online }); });
    call.on('end', () => call.end());
  },
});
server.addService(health.Health.service, { Check: (_call, cb) => cb(null, { status: 'SERVING' }) });
server.addService(controller.GRPCController.service, {
  Shutdown: (_call, cb) => {
    cb(null, {});
    log('shutdown requested');
    setTimeout(() => process.exit(0), 10);
  },
});

// 3. AutoMTLS: our own certificate for localhost; trust only the gateway's.
const pems = selfsigned.generate([{ name: 'commonName', value: 'localhost' }], {
  keySize: 2048, days: 365, algorithm: 'sha256',
  extensions: [
    { name: 'basicConstraints', cA: true },
    { name: 'keyUsage', keyCertSign: true, digitalSignature: true, keyEncipherment: true },
    { name: 'extKeyUsage', serverAuth: true, clientAuth: true },
    { name: 'subjectAltName', altNames: [{ type: 2, value: 'localhost' }, { type: 7, ip: '127.0.0.1' }] },
  ],
});
const clientCert = process.env.PLUGIN_CLIENT_CERT;
const creds = grpc.ServerCredentials.createSsl(Buffer.from(clientCert), [{ private_key: Buffer.from(pems.private), cert_chain: Buffer.from(pems.cert) }], true);
const der = Buffer.from(pems.cert.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');

server.bindAsync('127.0.0.1:0', creds, (err, port) => {
  if (err) { log('bind failed', { err: String(err) }); process.exit(1); }
  // 4. The handshake line, the only thing ever written to stdout.
  const b64 = der.toString('base64').replace(/=+$/, '');
  process.stdout.write(`1|1|tcp|127.0.0.1:${port}|grpc|${b64}\n`);
  log('node plugin serving', { port });
});

// 6. Leave with the parent.
const parent = process.ppid;
setInterval(() => { if (process.ppid !== parent) process.exit(3); }, 1000).unref();

// The example page: sign in with a pasted token, watch a shared folder
// (storage:folders/<name>) and the people online (presence:user/<id>), and
// show each notification. The client keeps its queue, last seq and etags in
// localStorage, so a reload resumes where it was, with no duplicate.
import { createClient } from './meshgate-client.js';

const $ = (id) => document.getElementById(id);
const saved = JSON.parse(localStorage.getItem('meshgate-example') ?? 'null');
// The notifications shown, kept for this tab so a reload shows them again.
const log = JSON.parse(sessionStorage.getItem('meshgate-example-log') ?? '[]');
window.meshgateEvents = log; // for tests and curious people: what the page has shown

$('url').value = saved?.url ?? (location.pathname.startsWith('/examples/') ? `${location.origin}/graphql` : 'https://localhost:8443/graphql');
if (saved) {
  $('token').value = saved.token;
  $('folder').value = saved.folder;
  $('people').value = saved.people;
}

function claims(token) {
  try {
    return JSON.parse(atob(token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/')));
  } catch {
    return {};
  }
}

let client;
const files = new Map(); // path → size
const online = new Map(); // user → devices

function render() {
  $('state').textContent = client?.state ?? '';
  $('state').className = client?.state ?? '';
  $('transport').textContent = client?.transport ?? '';
  $('queue').textContent = client?.queue ?? '';
  $('seq').textContent = String(client?.lastSeq ?? 0);
  const fl = $('files');
  if (files.size) fl.replaceChildren(...[...files].sort().map(([p, size]) => li(`${p} (${size} B)`)));
  const pl = $('people-online');
  const people = [...online].filter(([, d]) => d.length);
  if (online.size) pl.replaceChildren(...(people.length ? people.map(([u, d]) => li(`${u}: ${d.join(', ')}`)) : [li('nobody', 'empty')]));
  $('log').replaceChildren(
    ...log
      .slice(-200)
      .reverse()
      .map((e) => {
        const item = li('', e.kind);
        item.append(span(e.kind, 'kind'), ` #${e.seq} ${e.resource} @${e.etag.slice(0, 12)} `, summary(e));
        return item;
      }),
  );
}

const li = (text, cls) => Object.assign(document.createElement('li'), { textContent: text, className: cls ?? '' });
const span = (text, cls) => Object.assign(document.createElement('span'), { textContent: text, className: cls });

function summary(e) {
  const p = e.payload;
  if (!p || typeof p !== 'object') return e.kind === 'CHANGED_WHILE_AWAY' ? 'changed while this page was away' : '';
  if (Array.isArray(p.added)) {
    const parts = [];
    for (const k of ['added', 'modified', 'removed']) if (p[k]?.length) parts.push(`${k} ${p[k].map((f) => f.path ?? f).join(', ')}`);
    return parts.join('; ');
  }
  if (p.user) return `${p.user}: ${p.count} online${p.online?.length ? ` (${p.online.join(', ')})` : ''}`;
  return JSON.stringify(p).slice(0, 120);
}

// apply folds one event into the views.
function apply(e) {
  const p = e.payload;
  if (e.resource.startsWith('storage:') && p && typeof p === 'object') {
    for (const f of [...(p.added ?? []), ...(p.modified ?? [])]) files.set(f.path, f.size);
    for (const f of p.removed ?? []) files.delete(f.path);
  }
  if (e.resource.startsWith('presence:user/') && p && typeof p === 'object') online.set(p.user, p.online ?? []);
}

function show(e) {
  const entry = { kind: e.kind, resource: e.resource, etag: e.etag, seq: e.seq, payload: e.payload, at: e.publishedAt };
  log.push(entry);
  sessionStorage.setItem('meshgate-example-log', JSON.stringify(log.slice(-500)));
  apply(entry);
  render();
}

function start({ url, token, folder, people }) {
  const me = claims(token);
  const users = [...new Set([me.sub, ...people.split(/[\s,]+/)].filter(Boolean))];
  client = createClient({
    url,
    token: () => token, // a pasted token: paste a new one when it expires
    storage: localStorage,
    storageKey: `meshgate:${me.sub}/${me.dev}`,
  });
  window.meshgateClient = client;
  client.on('state', render);
  client.on('error', (err) => console.debug('meshgate:', err.message));
  for (const r of [`storage:folders/${folder}`, ...users.map((u) => `presence:user/${u}`)]) {
    const w = client.watch(r);
    w.on('event', show);
    w.on('end', (err) => err && show({ kind: 'REVOKED', resource: r, etag: '', seq: 0, payload: err.message, publishedAt: '' }));
  }
  $('folder-name').textContent = folder;
  $('signin').hidden = true;
  $('live').hidden = false;
  for (const e of log) apply(e);
  render();
}

$('signin').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const s = { url: $('url').value.trim(), token: $('token').value.trim(), folder: $('folder').value.trim(), people: $('people').value.trim() };
  localStorage.setItem('meshgate-example', JSON.stringify(s));
  start(s);
});

$('signout').addEventListener('click', async () => {
  await client?.close(); // deletes the queue and what the client saved
  localStorage.removeItem('meshgate-example');
  sessionStorage.removeItem('meshgate-example-log');
  location.reload();
});

if (saved) start(saved);

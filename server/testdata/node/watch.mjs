// Watch a meshgate queue over WebSocket with the graphql-ws client.
//
//   MESHGATE_TOKEN=… NODE_EXTRA_CA_CERTS=../../../meshgate-data/tls-cert.pem \
//     node watch.mjs <queue> [after] [url]
//
// Prints each notification as one JSON line; resumes with `after`.
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

const [queue, after = '0', url = 'wss://localhost:8443/graphql'] = process.argv.slice(2);
if (!queue || !process.env.MESHGATE_TOKEN) {
  console.error('usage: MESHGATE_TOKEN=… node watch.mjs <queue> [after] [url]');
  process.exit(2);
}
const client = createClient({
  url,
  webSocketImpl: WebSocket,
  connectionParams: { authorization: `Bearer ${process.env.MESHGATE_TOKEN}` },
  on: { connected: () => console.error('connected; waiting for notifications (Ctrl-C to stop)') },
});
const query = `subscription($q: String!, $a: Seq) {
  notifications(queue: $q, after: $a) { seq kind resource etag publishedAt payload from { user device } }
}`;
for await (const result of client.iterate({ query, variables: { q: queue, a: Number(after) } })) {
  if (result.errors) console.error(JSON.stringify(result.errors));
  else console.log(JSON.stringify(result.data.notifications));
}

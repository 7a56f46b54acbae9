// @meshgate/client: meshgate's SDK for browsers and Node 20+.

export { createClient, Client, Watch } from './client.js';
export type { ClientEvent, ClientOptions, State, Stats, WatchEvent, WatchEventKind } from './client.js';
export { MeshgateError, NetworkFailure, isCode } from './http.js';
export { memoryStorage } from './storage.js';
export type { KeyValueStorage } from './storage.js';
export type { Notification, Transport } from './transports.js';
export type { NotificationKind } from './generated.js';

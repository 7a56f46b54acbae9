// Persisting what the client knows, so that a page reload resumes.

/** KeyValueStorage is where a client keeps its queue name, last seq and
 * etags between runs. `window.localStorage` and `sessionStorage` satisfy it;
 * so does any object with these three methods (they may return promises). */
export interface KeyValueStorage {
  getItem(key: string): string | null | Promise<string | null>;
  setItem(key: string, value: string): void | Promise<void>;
  removeItem(key: string): void | Promise<void>;
}

/** memoryStorage returns a KeyValueStorage held in memory: what survives a
 * reconnection but not a restart. Tests use it to share state between two
 * clients, as a page reload does. */
export function memoryStorage(): KeyValueStorage & { readonly map: Map<string, string> } {
  const map = new Map<string, string>();
  return {
    map,
    getItem: (k) => map.get(k) ?? null,
    setItem: (k, v) => void map.set(k, v),
    removeItem: (k) => void map.delete(k),
  };
}

/** Saved is the persisted state of one client. */
export interface Saved {
  v: 1;
  /** The queue's name. */
  queue: string;
  /** The last seq handled. */
  lastSeq: number;
  /** Resource → last etag known, for the resources subscribed on queue. */
  etags: Record<string, string>;
}

export function parseSaved(s: string | null): Saved | undefined {
  if (!s) return undefined;
  try {
    const v = JSON.parse(s) as Partial<Saved>;
    if (v.v !== 1 || typeof v.queue !== 'string' || typeof v.lastSeq !== 'number' || typeof v.etags !== 'object' || !v.etags) return undefined;
    return v as Saved;
  } catch {
    return undefined;
  }
}

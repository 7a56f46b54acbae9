// A typed event emitter and an async-iterable channel that works in
// browsers and in Node (no node:events).

/** Listener is a function called with one event. */
export type Listener<T> = (value: T) => void;

/** Emitter is a small typed event emitter. Listeners run synchronously, in
 * the order they were added; one that throws does not stop the others. */
export class Emitter<E extends object> {
  readonly #listeners = new Map<keyof E, Set<Listener<never>>>();

  /** on adds a listener for event name and returns a function removing it. */
  on<K extends keyof E>(name: K, listener: Listener<E[K]>): () => void {
    let set = this.#listeners.get(name);
    if (!set) {
      set = new Set();
      this.#listeners.set(name, set);
    }
    set.add(listener as Listener<never>);
    return () => this.off(name, listener);
  }

  /** off removes a listener added with on. */
  off<K extends keyof E>(name: K, listener: Listener<E[K]>): void {
    this.#listeners.get(name)?.delete(listener as Listener<never>);
  }

  /** emit calls every listener of name with value. */
  protected emit<K extends keyof E>(name: K, value: E[K]): void {
    for (const l of [...(this.#listeners.get(name) ?? [])]) {
      try {
        (l as Listener<E[K]>)(value);
      } catch (err) {
        queueMicrotask(() => {
          throw err; // reported as an uncaught error, like a DOM listener's
        });
      }
    }
  }
}

/** Channel buffers values for one async iterator. It is unbounded: an
 * iterator that stops reading without returning holds its values. */
export class Channel<T> implements AsyncIterableIterator<T> {
  #buf: T[] = [];
  #waiting: ((r: IteratorResult<T>) => void) | undefined;
  #rejectWaiting: ((e: unknown) => void) | undefined;
  #done = false;
  #err: unknown;
  #onReturn: () => void;

  constructor(onReturn: () => void) {
    this.#onReturn = onReturn;
  }

  push(v: T): void {
    if (this.#done) return;
    if (this.#waiting) {
      const w = this.#waiting;
      this.#waiting = this.#rejectWaiting = undefined;
      w({ value: v, done: false });
    } else {
      this.#buf.push(v);
    }
  }

  /** end finishes the iterator after the buffered values; with err, the
   * last next() rejects with it. */
  end(err?: unknown): void {
    if (this.#done) return;
    this.#done = true;
    this.#err = err;
    this.#onReturn();
    if (this.#waiting && this.#buf.length === 0) {
      const w = this.#waiting;
      const r = this.#rejectWaiting;
      this.#waiting = this.#rejectWaiting = undefined;
      if (err !== undefined) r?.(err);
      else w({ value: undefined, done: true });
    }
  }

  next(): Promise<IteratorResult<T>> {
    if (this.#buf.length > 0) return Promise.resolve({ value: this.#buf.shift() as T, done: false });
    if (this.#done) {
      if (this.#err !== undefined) {
        const e = this.#err;
        this.#err = undefined;
        return Promise.reject(e);
      }
      return Promise.resolve({ value: undefined, done: true });
    }
    return new Promise((resolve, reject) => {
      this.#waiting = resolve;
      this.#rejectWaiting = reject;
    });
  }

  return(): Promise<IteratorResult<T>> {
    this.#buf = [];
    this.#err = undefined;
    this.end();
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<T> {
    return this;
  }
}

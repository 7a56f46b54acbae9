// src/events.ts
var Emitter = class {
  #listeners = /* @__PURE__ */ new Map();
  /** on adds a listener for event name and returns a function removing it. */
  on(name, listener) {
    let set = this.#listeners.get(name);
    if (!set) {
      set = /* @__PURE__ */ new Set();
      this.#listeners.set(name, set);
    }
    set.add(listener);
    return () => this.off(name, listener);
  }
  /** off removes a listener added with on. */
  off(name, listener) {
    this.#listeners.get(name)?.delete(listener);
  }
  /** emit calls every listener of name with value. */
  emit(name, value) {
    for (const l of [...this.#listeners.get(name) ?? []]) {
      try {
        l(value);
      } catch (err) {
        queueMicrotask(() => {
          throw err;
        });
      }
    }
  }
};
var Channel = class {
  #buf = [];
  #waiting;
  #rejectWaiting;
  #done = false;
  #err;
  #onReturn;
  constructor(onReturn) {
    this.#onReturn = onReturn;
  }
  push(v) {
    if (this.#done) return;
    if (this.#waiting) {
      const w = this.#waiting;
      this.#waiting = this.#rejectWaiting = void 0;
      w({ value: v, done: false });
    } else {
      this.#buf.push(v);
    }
  }
  /** end finishes the iterator after the buffered values; with err, the
   * last next() rejects with it. */
  end(err) {
    if (this.#done) return;
    this.#done = true;
    this.#err = err;
    this.#onReturn();
    if (this.#waiting && this.#buf.length === 0) {
      const w = this.#waiting;
      const r = this.#rejectWaiting;
      this.#waiting = this.#rejectWaiting = void 0;
      if (err !== void 0) r?.(err);
      else w({ value: void 0, done: true });
    }
  }
  next() {
    if (this.#buf.length > 0) return Promise.resolve({ value: this.#buf.shift(), done: false });
    if (this.#done) {
      if (this.#err !== void 0) {
        const e = this.#err;
        this.#err = void 0;
        return Promise.reject(e);
      }
      return Promise.resolve({ value: void 0, done: true });
    }
    return new Promise((resolve, reject) => {
      this.#waiting = resolve;
      this.#rejectWaiting = reject;
    });
  }
  return() {
    this.#buf = [];
    this.#err = void 0;
    this.end();
    return Promise.resolve({ value: void 0, done: true });
  }
  [Symbol.asyncIterator]() {
    return this;
  }
};

// src/http.ts
var MeshgateError = class extends Error {
  code;
  constructor(code, message) {
    super(`${code}: ${message}`);
    this.name = "MeshgateError";
    this.code = code;
  }
};
var NetworkFailure = class extends Error {
  status;
  constructor(message, status, cause) {
    super(message, cause === void 0 ? void 0 : { cause });
    this.name = "NetworkFailure";
    this.status = status;
  }
};
function isCode(err, code) {
  return err instanceof MeshgateError && err.code === code;
}
function fromErrors(errors) {
  const e = errors[0] ?? {};
  const code = typeof e.extensions?.code === "string" ? e.extensions.code : "INTERNAL";
  return new MeshgateError(code, e.message ?? "unknown error");
}
async function post(fetchFn, url, token, query, variables, signal) {
  let res;
  try {
    res = await fetchFn(url, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        accept: "application/graphql-response+json, application/json",
        authorization: `Bearer ${token}`
      },
      body: JSON.stringify({ query, variables }),
      signal
    });
  } catch (err) {
    if (signal.aborted) throw err;
    throw new NetworkFailure(`POST ${url}: ${String(err)}`, void 0, err);
  }
  let body;
  try {
    body = await res.json();
  } catch (err) {
    if (signal.aborted) throw err;
    throw new NetworkFailure(`POST ${url}: ${res.status} ${res.statusText}: not a GraphQL response`, res.status, err);
  }
  if (body.errors?.length) throw fromErrors(body.errors);
  if (body.data == null) throw new NetworkFailure(`POST ${url}: ${res.status}: no data`, res.status);
  return body.data;
}
function tokenExpiry(token) {
  const part = token.split(".")[1];
  if (!part) return void 0;
  try {
    const json = atob(part.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(part.length / 4) * 4, "="));
    const exp = JSON.parse(json).exp;
    return typeof exp === "number" ? exp * 1e3 : void 0;
  } catch {
    return void 0;
  }
}

// src/operations.ts
var createQueue = (
  /* GraphQL */
  `
  mutation CreateQueue($ttl: Int) {
    createQueue(ttlSeconds: $ttl) {
      name
      lastSeq
    }
  }
`
);
var renewQueue = (
  /* GraphQL */
  `
  mutation RenewQueue($name: String!) {
    renewQueue(name: $name) {
      name
      lastSeq
    }
  }
`
);
var deleteQueue = (
  /* GraphQL */
  `
  mutation DeleteQueue($name: String!) {
    deleteQueue(name: $name)
  }
`
);
var subscribe = (
  /* GraphQL */
  `
  mutation Subscribe($queue: String!, $resource: String!, $proof: String, $knownEtag: String) {
    subscribe(queue: $queue, resource: $resource, proof: $proof, knownEtag: $knownEtag) {
      resource
      etag
      etagUnknown
    }
  }
`
);
var unsubscribe = (
  /* GraphQL */
  `
  mutation Unsubscribe($queue: String!, $resource: String!) {
    unsubscribe(queue: $queue, resource: $resource)
    renewQueue(name: $queue) {
      lastSeq
    }
  }
`
);
var poll = (
  /* GraphQL */
  `
  query Poll($queue: String!, $after: Seq, $wait: Int) {
    notifications(queue: $queue, after: $after, limit: 1000, waitSeconds: $wait) {
      items {
        seq
        kind
        resource
        etag
        etagUnknown
        publishedAt
        payload
        from {
          user
          device
        }
      }
      lastSeq
    }
  }
`
);
var stream = (
  /* GraphQL */
  `
  subscription Stream($queue: String!, $after: Seq) {
    notifications(queue: $queue, after: $after) {
      seq
      kind
      resource
      etag
      etagUnknown
      publishedAt
      payload
      from {
        user
        device
      }
    }
  }
`
);

// src/storage.ts
function memoryStorage() {
  const map = /* @__PURE__ */ new Map();
  return {
    map,
    getItem: (k) => map.get(k) ?? null,
    setItem: (k, v) => void map.set(k, v),
    removeItem: (k) => void map.delete(k)
  };
}
function parseSaved(s) {
  if (!s) return void 0;
  try {
    const v = JSON.parse(s);
    if (v.v !== 1 || typeof v.queue !== "string" || typeof v.lastSeq !== "number" || typeof v.etags !== "object" || !v.etags) return void 0;
    return v;
  } catch {
    return void 0;
  }
}

// node_modules/graphql-ws/dist/common-CGW11Fyb.js
function extendedTypeof(val) {
  if (val === null) {
    return "null";
  }
  if (Array.isArray(val)) {
    return "array";
  }
  return typeof val;
}
function isObject(val) {
  return extendedTypeof(val) === "object";
}
function areGraphQLFormattedErrors(obj) {
  return Array.isArray(obj) && // must be at least one error
  obj.length > 0 && // error has at least a message
  obj.every((ob) => "message" in ob);
}
function limitCloseReason(reason, whenTooLong) {
  return reason.length < 124 ? reason : whenTooLong;
}
var GRAPHQL_TRANSPORT_WS_PROTOCOL = "graphql-transport-ws";
var CloseCode = /* @__PURE__ */ ((CloseCode2) => {
  CloseCode2[CloseCode2["InternalServerError"] = 4500] = "InternalServerError";
  CloseCode2[CloseCode2["InternalClientError"] = 4005] = "InternalClientError";
  CloseCode2[CloseCode2["BadRequest"] = 4400] = "BadRequest";
  CloseCode2[CloseCode2["BadResponse"] = 4004] = "BadResponse";
  CloseCode2[CloseCode2["Unauthorized"] = 4401] = "Unauthorized";
  CloseCode2[CloseCode2["Forbidden"] = 4403] = "Forbidden";
  CloseCode2[CloseCode2["SubprotocolNotAcceptable"] = 4406] = "SubprotocolNotAcceptable";
  CloseCode2[CloseCode2["ConnectionInitialisationTimeout"] = 4408] = "ConnectionInitialisationTimeout";
  CloseCode2[CloseCode2["ConnectionAcknowledgementTimeout"] = 4504] = "ConnectionAcknowledgementTimeout";
  CloseCode2[CloseCode2["SubscriberAlreadyExists"] = 4409] = "SubscriberAlreadyExists";
  CloseCode2[CloseCode2["TooManyInitialisationRequests"] = 4429] = "TooManyInitialisationRequests";
  return CloseCode2;
})(CloseCode || {});
var MessageType = /* @__PURE__ */ ((MessageType2) => {
  MessageType2["ConnectionInit"] = "connection_init";
  MessageType2["ConnectionAck"] = "connection_ack";
  MessageType2["Ping"] = "ping";
  MessageType2["Pong"] = "pong";
  MessageType2["Subscribe"] = "subscribe";
  MessageType2["Next"] = "next";
  MessageType2["Error"] = "error";
  MessageType2["Complete"] = "complete";
  return MessageType2;
})(MessageType || {});
function validateMessage(val) {
  if (!isObject(val)) {
    throw new Error(
      `Message is expected to be an object, but got ${extendedTypeof(val)}`
    );
  }
  if (!val.type) {
    throw new Error(`Message is missing the 'type' property`);
  }
  if (typeof val.type !== "string") {
    throw new Error(
      `Message is expects the 'type' property to be a string, but got ${extendedTypeof(
        val.type
      )}`
    );
  }
  switch (val.type) {
    case "connection_init":
    case "connection_ack":
    case "ping":
    case "pong": {
      if (val.payload != null && !isObject(val.payload)) {
        throw new Error(
          `"${val.type}" message expects the 'payload' property to be an object or nullish or missing, but got "${val.payload}"`
        );
      }
      break;
    }
    case "subscribe": {
      if (typeof val.id !== "string") {
        throw new Error(
          `"${val.type}" message expects the 'id' property to be a string, but got ${extendedTypeof(
            val.id
          )}`
        );
      }
      if (!val.id) {
        throw new Error(
          `"${val.type}" message requires a non-empty 'id' property`
        );
      }
      if (!isObject(val.payload)) {
        throw new Error(
          `"${val.type}" message expects the 'payload' property to be an object, but got ${extendedTypeof(
            val.payload
          )}`
        );
      }
      if (typeof val.payload.query !== "string") {
        throw new Error(
          `"${val.type}" message payload expects the 'query' property to be a string, but got ${extendedTypeof(
            val.payload.query
          )}`
        );
      }
      if (val.payload.variables != null && !isObject(val.payload.variables)) {
        throw new Error(
          `"${val.type}" message payload expects the 'variables' property to be a an object or nullish or missing, but got ${extendedTypeof(
            val.payload.variables
          )}`
        );
      }
      if (val.payload.operationName != null && extendedTypeof(val.payload.operationName) !== "string") {
        throw new Error(
          `"${val.type}" message payload expects the 'operationName' property to be a string or nullish or missing, but got ${extendedTypeof(
            val.payload.operationName
          )}`
        );
      }
      if (val.payload.extensions != null && !isObject(val.payload.extensions)) {
        throw new Error(
          `"${val.type}" message payload expects the 'extensions' property to be a an object or nullish or missing, but got ${extendedTypeof(
            val.payload.extensions
          )}`
        );
      }
      break;
    }
    case "next": {
      if (typeof val.id !== "string") {
        throw new Error(
          `"${val.type}" message expects the 'id' property to be a string, but got ${extendedTypeof(
            val.id
          )}`
        );
      }
      if (!val.id) {
        throw new Error(
          `"${val.type}" message requires a non-empty 'id' property`
        );
      }
      if (!isObject(val.payload)) {
        throw new Error(
          `"${val.type}" message expects the 'payload' property to be an object, but got ${extendedTypeof(
            val.payload
          )}`
        );
      }
      break;
    }
    case "error": {
      if (typeof val.id !== "string") {
        throw new Error(
          `"${val.type}" message expects the 'id' property to be a string, but got ${extendedTypeof(
            val.id
          )}`
        );
      }
      if (!val.id) {
        throw new Error(
          `"${val.type}" message requires a non-empty 'id' property`
        );
      }
      if (!areGraphQLFormattedErrors(val.payload)) {
        throw new Error(
          `"${val.type}" message expects the 'payload' property to be an array of GraphQL errors, but got ${JSON.stringify(
            val.payload
          )}`
        );
      }
      break;
    }
    case "complete": {
      if (typeof val.id !== "string") {
        throw new Error(
          `"${val.type}" message expects the 'id' property to be a string, but got ${extendedTypeof(
            val.id
          )}`
        );
      }
      if (!val.id) {
        throw new Error(
          `"${val.type}" message requires a non-empty 'id' property`
        );
      }
      break;
    }
    default:
      throw new Error(`Invalid message 'type' property "${val.type}"`);
  }
  return val;
}
function parseMessage(data, reviver) {
  return validateMessage(
    typeof data === "string" ? JSON.parse(data, reviver) : data
  );
}
function stringifyMessage(msg, replacer) {
  validateMessage(msg);
  return JSON.stringify(msg, replacer);
}

// node_modules/graphql-ws/dist/client.js
function createClient(options) {
  const {
    url,
    connectionParams,
    lazy = true,
    onNonLazyError = console.error,
    lazyCloseTimeout: lazyCloseTimeoutMs = 0,
    keepAlive = 0,
    disablePong,
    connectionAckWaitTimeout = 0,
    retryAttempts = 5,
    retryWait = async function randomisedExponentialBackoff(retries2) {
      const retryDelaySeconds = Math.pow(2, retries2);
      await new Promise(
        (resolve) => setTimeout(
          resolve,
          retryDelaySeconds * 1e3 + // add random timeout from 300ms to 3s
          Math.floor(Math.random() * (3e3 - 300) + 300)
        )
      );
    },
    shouldRetry = isLikeCloseEvent,
    on,
    webSocketImpl,
    /**
     * Generates a v4 UUID to be used as the ID using `Math`
     * as the random number generator. Supply your own generator
     * in case you need more uniqueness.
     *
     * Reference: https://gist.github.com/jed/982883
     */
    generateID = function generateUUID() {
      return "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx".replace(/[xy]/g, (c) => {
        const r = Math.random() * 16 | 0, v = c == "x" ? r : r & 3 | 8;
        return v.toString(16);
      });
    },
    jsonMessageReplacer: replacer,
    jsonMessageReviver: reviver
  } = options;
  let ws;
  if (webSocketImpl) {
    if (!isWebSocket(webSocketImpl)) {
      throw new Error("Invalid WebSocket implementation provided");
    }
    ws = webSocketImpl;
  } else if (typeof WebSocket !== "undefined") {
    ws = WebSocket;
  } else if (typeof global !== "undefined") {
    ws = global.WebSocket || // @ts-expect-error: Support more browsers
    global.MozWebSocket;
  } else if (typeof window !== "undefined") {
    ws = window.WebSocket || // @ts-expect-error: Support more browsers
    window.MozWebSocket;
  }
  if (!ws)
    throw new Error(
      "WebSocket implementation missing; on Node you can `import WebSocket from 'ws';` and pass `webSocketImpl: WebSocket` to `createClient`"
    );
  const WebSocketImpl = ws;
  const emitter = (() => {
    const message = /* @__PURE__ */ (() => {
      const listeners2 = {};
      return {
        on(id, listener) {
          listeners2[id] = listener;
          return () => {
            delete listeners2[id];
          };
        },
        emit(message2) {
          if ("id" in message2) listeners2[message2.id]?.(message2);
        }
      };
    })();
    const listeners = {
      connecting: on?.connecting ? [on.connecting] : [],
      opened: on?.opened ? [on.opened] : [],
      connected: on?.connected ? [on.connected] : [],
      ping: on?.ping ? [on.ping] : [],
      pong: on?.pong ? [on.pong] : [],
      message: on?.message ? [message.emit, on.message] : [message.emit],
      closed: on?.closed ? [on.closed] : [],
      error: on?.error ? [on.error] : []
    };
    return {
      onMessage: message.on,
      on(event, listener) {
        const l = listeners[event];
        l.push(listener);
        return () => {
          const i = l.indexOf(listener);
          if (i > -1) {
            l.splice(i, 1);
          }
        };
      },
      emit(event, ...args) {
        for (const listener of [...listeners[event]]) {
          listener(...args);
        }
      }
    };
  })();
  function errorOrClosed(cb) {
    const listening = [
      // errors are fatal and more critical than close events, throw them first
      emitter.on("error", (err) => {
        listening.forEach((unlisten) => unlisten());
        cb(err);
      }),
      // closes can be graceful and not fatal, throw them second (if error didnt throw)
      emitter.on("closed", (event) => {
        listening.forEach((unlisten) => unlisten());
        cb(event);
      })
    ];
    return () => listening.forEach((unlisten) => unlisten());
  }
  let connecting, locks = 0, lazyCloseTimeout, retrying = false, retries = 0, disposed = false;
  async function connect2() {
    clearTimeout(lazyCloseTimeout);
    const [socket, throwOnClose] = await (connecting ?? (connecting = new Promise(
      (connected, denied) => (async () => {
        if (retrying) {
          await retryWait(retries);
          if (!locks) {
            connecting = void 0;
            return denied({ code: 1e3, reason: "All Subscriptions Gone" });
          }
          retries++;
        }
        emitter.emit("connecting", retrying);
        const socket2 = new WebSocketImpl(
          typeof url === "function" ? await url() : url,
          GRAPHQL_TRANSPORT_WS_PROTOCOL
        );
        let connectionAckTimeout, queuedPing;
        function enqueuePing() {
          if (isFinite(keepAlive) && keepAlive > 0) {
            clearTimeout(queuedPing);
            queuedPing = setTimeout(() => {
              if (socket2.readyState === WebSocketImpl.OPEN) {
                socket2.send(stringifyMessage({ type: MessageType.Ping }));
                emitter.emit("ping", false, void 0);
              }
            }, keepAlive);
          }
        }
        errorOrClosed((errOrEvent) => {
          connecting = void 0;
          clearTimeout(connectionAckTimeout);
          clearTimeout(queuedPing);
          denied(errOrEvent);
          if (errOrEvent instanceof TerminatedCloseEvent) {
            socket2.close(4499, "Terminated");
            socket2.onerror = null;
            socket2.onclose = null;
          }
        });
        socket2.onerror = (err) => emitter.emit("error", err);
        socket2.onclose = (event) => emitter.emit("closed", event);
        socket2.onopen = async () => {
          try {
            emitter.emit("opened", socket2);
            const payload = typeof connectionParams === "function" ? await connectionParams() : connectionParams;
            if (socket2.readyState !== WebSocketImpl.OPEN) return;
            socket2.send(
              stringifyMessage(
                payload ? {
                  type: MessageType.ConnectionInit,
                  payload
                } : {
                  type: MessageType.ConnectionInit
                  // payload is completely absent if not provided
                },
                replacer
              )
            );
            if (isFinite(connectionAckWaitTimeout) && connectionAckWaitTimeout > 0) {
              connectionAckTimeout = setTimeout(() => {
                socket2.close(
                  CloseCode.ConnectionAcknowledgementTimeout,
                  "Connection acknowledgement timeout"
                );
              }, connectionAckWaitTimeout);
            }
            enqueuePing();
          } catch (err) {
            emitter.emit("error", err);
            socket2.close(
              CloseCode.InternalClientError,
              limitCloseReason(
                err instanceof Error ? err.message : String(err),
                "Internal client error"
              )
            );
          }
        };
        let acknowledged = false;
        socket2.onmessage = ({ data }) => {
          try {
            const message = parseMessage(data, reviver);
            emitter.emit("message", message);
            if (message.type === "ping" || message.type === "pong") {
              emitter.emit(message.type, true, message.payload);
              if (message.type === "pong") {
                enqueuePing();
              } else if (!disablePong) {
                socket2.send(
                  stringifyMessage(
                    message.payload ? {
                      type: MessageType.Pong,
                      payload: message.payload
                    } : {
                      type: MessageType.Pong
                      // payload is completely absent if not provided
                    },
                    replacer
                  )
                );
                emitter.emit("pong", false, message.payload);
              }
              return;
            }
            if (acknowledged) return;
            if (message.type !== MessageType.ConnectionAck)
              throw new Error(
                `First message cannot be of type ${message.type}`
              );
            clearTimeout(connectionAckTimeout);
            acknowledged = true;
            emitter.emit("connected", socket2, message.payload, retrying);
            retrying = false;
            retries = 0;
            const throwOnClose2 = new Promise(
              (_, reject) => errorOrClosed(reject)
            );
            throwOnClose2.catch(() => {
            });
            connected([socket2, throwOnClose2]);
          } catch (err) {
            socket2.onmessage = null;
            emitter.emit("error", err);
            socket2.close(
              CloseCode.BadResponse,
              limitCloseReason(
                err instanceof Error ? err.message : String(err),
                "Bad response"
              )
            );
          }
        };
      })()
    )));
    if (socket.readyState === WebSocketImpl.CLOSING) await throwOnClose;
    let release = () => {
    };
    const released = new Promise((resolve) => release = resolve);
    return [
      socket,
      release,
      // resolves on release or rejects on error/close, whichever comes first.
      // not racing with throwOnClose on purpose, it lives as long as the socket
      // and every race would leak memory per operation
      new Promise((resolve, reject) => {
        const unlisten = errorOrClosed(reject);
        if (socket.readyState !== WebSocketImpl.OPEN)
          throwOnClose.catch(reject);
        released.then(() => {
          unlisten();
          if (!locks) {
            const complete = () => socket.close(1e3, "Normal Closure");
            if (isFinite(lazyCloseTimeoutMs) && lazyCloseTimeoutMs > 0) {
              clearTimeout(lazyCloseTimeout);
              lazyCloseTimeout = setTimeout(() => {
                if (!locks && socket.readyState === WebSocketImpl.OPEN)
                  complete();
              }, lazyCloseTimeoutMs);
            } else {
              complete();
            }
          }
          resolve();
        });
      })
    ];
  }
  function shouldRetryConnectOrThrow(errOrCloseEvent) {
    if (isLikeCloseEvent(errOrCloseEvent) && (isFatalInternalCloseCode(errOrCloseEvent.code) || [
      CloseCode.InternalServerError,
      CloseCode.InternalClientError,
      CloseCode.BadRequest,
      CloseCode.BadResponse,
      CloseCode.Unauthorized,
      // CloseCode.Forbidden, might grant access out after retry
      CloseCode.SubprotocolNotAcceptable,
      // CloseCode.ConnectionInitialisationTimeout, might not time out after retry
      // CloseCode.ConnectionAcknowledgementTimeout, might not time out after retry
      CloseCode.SubscriberAlreadyExists,
      CloseCode.TooManyInitialisationRequests
      // 4499, // Terminated, probably because the socket froze, we want to retry
    ].includes(errOrCloseEvent.code)))
      throw errOrCloseEvent;
    if (disposed) return false;
    if (isLikeCloseEvent(errOrCloseEvent) && errOrCloseEvent.code === 1e3)
      return locks > 0;
    if (!retryAttempts || retries >= retryAttempts) throw errOrCloseEvent;
    if (!shouldRetry(errOrCloseEvent)) throw errOrCloseEvent;
    return retrying = true;
  }
  if (!lazy) {
    (async () => {
      locks++;
      for (; ; ) {
        try {
          const [, , throwOnClose] = await connect2();
          await throwOnClose;
        } catch (errOrCloseEvent) {
          try {
            if (!shouldRetryConnectOrThrow(errOrCloseEvent)) return;
          } catch (errOrCloseEvent2) {
            return onNonLazyError?.(errOrCloseEvent2);
          }
        }
      }
    })();
  }
  function subscribe2(payload, sink) {
    const id = generateID(payload);
    let done = false, errored = false, releaser = () => {
      locks--;
      done = true;
    };
    (async () => {
      locks++;
      for (; ; ) {
        try {
          const [socket, release, waitForReleaseOrThrowOnClose] = await connect2();
          if (done) {
            waitForReleaseOrThrowOnClose.catch(() => {
            });
            return release();
          }
          const unlisten = emitter.onMessage(id, (message) => {
            switch (message.type) {
              case MessageType.Next: {
                sink.next(message.payload);
                return;
              }
              case MessageType.Error: {
                errored = true, done = true;
                sink.error(message.payload);
                releaser();
                return;
              }
              case MessageType.Complete: {
                done = true;
                releaser();
                return;
              }
            }
          });
          socket.send(
            stringifyMessage(
              {
                id,
                type: MessageType.Subscribe,
                payload
              },
              replacer
            )
          );
          releaser = () => {
            if (!done && socket.readyState === WebSocketImpl.OPEN)
              socket.send(
                stringifyMessage(
                  {
                    id,
                    type: MessageType.Complete
                  },
                  replacer
                )
              );
            locks--;
            done = true;
            release();
          };
          await waitForReleaseOrThrowOnClose.finally(unlisten);
          return;
        } catch (errOrCloseEvent) {
          if (!shouldRetryConnectOrThrow(errOrCloseEvent)) return;
        }
      }
    })().then(() => {
      if (!errored) sink.complete();
    }).catch((err) => {
      sink.error(err);
    });
    return () => {
      if (!done) releaser();
    };
  }
  return {
    on: emitter.on,
    subscribe: subscribe2,
    iterate(request) {
      const pending = [];
      const deferred = {
        done: false,
        error: null,
        resolve: () => {
        }
      };
      const dispose = subscribe2(request, {
        next(val) {
          pending.push(val);
          deferred.resolve();
        },
        error(err) {
          deferred.done = true;
          deferred.error = err;
          deferred.resolve();
        },
        complete() {
          deferred.done = true;
          deferred.resolve();
        }
      });
      const iterator = (async function* iterator2() {
        for (; ; ) {
          if (!pending.length) {
            await new Promise((resolve) => deferred.resolve = resolve);
          }
          while (pending.length) {
            yield pending.shift();
          }
          if (deferred.error) {
            throw deferred.error;
          }
          if (deferred.done) {
            return;
          }
        }
      })();
      iterator.throw = async (err) => {
        if (!deferred.done) {
          deferred.done = true;
          deferred.error = err;
          deferred.resolve();
        }
        return { done: true, value: void 0 };
      };
      iterator.return = async () => {
        dispose();
        return { done: true, value: void 0 };
      };
      return iterator;
    },
    async dispose() {
      disposed = true;
      if (connecting) {
        const [socket] = await connecting;
        socket.close(1e3, "Normal Closure");
      }
    },
    terminate() {
      if (connecting) {
        emitter.emit("closed", new TerminatedCloseEvent());
      }
    }
  };
}
var TerminatedCloseEvent = class extends Error {
  name = "TerminatedCloseEvent";
  message = "4499: Terminated";
  code = 4499;
  reason = "Terminated";
  wasClean = false;
};
function isLikeCloseEvent(val) {
  return isObject(val) && "code" in val && "reason" in val;
}
function isFatalInternalCloseCode(code) {
  if ([
    1e3,
    // Normal Closure is not an erroneous close code
    1001,
    // Going Away
    1006,
    // Abnormal Closure
    1005,
    // No Status Received
    1012,
    // Service Restart
    1013,
    // Try Again Later
    1014
    // Bad Gateway
  ].includes(code))
    return false;
  return code >= 1e3 && code <= 1999;
}
function isWebSocket(val) {
  return typeof val === "function" && "constructor" in val && "CLOSED" in val && "CLOSING" in val && "CONNECTING" in val && "OPEN" in val;
}

// node_modules/graphql-sse/lib/utils.mjs
function isObject2(val) {
  return typeof val === "object" && val !== null;
}

// node_modules/graphql-sse/lib/common.mjs
var TOKEN_HEADER_KEY = "x-graphql-event-stream-token";
function validateStreamEvent(e) {
  e = e;
  if (e !== "next" && e !== "complete")
    throw new Error(`Invalid stream event "${e}"`);
  return e;
}
function parseStreamData(e, data) {
  if (data) {
    try {
      data = JSON.parse(data);
    } catch {
      throw new Error("Invalid stream data");
    }
  }
  if (e === "next" && !data)
    throw new Error('Stream data must be an object for "next" events');
  return data || null;
}

// node_modules/graphql-sse/lib/parser.mjs
var ControlChars;
(function(ControlChars2) {
  ControlChars2[ControlChars2["NewLine"] = 10] = "NewLine";
  ControlChars2[ControlChars2["CarriageReturn"] = 13] = "CarriageReturn";
  ControlChars2[ControlChars2["Space"] = 32] = "Space";
  ControlChars2[ControlChars2["Colon"] = 58] = "Colon";
})(ControlChars || (ControlChars = {}));
function createParser() {
  let buffer;
  let position;
  let fieldLength;
  let discardTrailingNewline = false;
  let message = { event: "", data: "" };
  let pending = [];
  const decoder = new TextDecoder();
  return function parse(chunk) {
    if (buffer === void 0) {
      buffer = chunk;
      position = 0;
      fieldLength = -1;
    } else {
      const concat = new Uint8Array(buffer.length + chunk.length);
      concat.set(buffer);
      concat.set(chunk, buffer.length);
      buffer = concat;
    }
    const bufLength = buffer.length;
    let lineStart = 0;
    while (position < bufLength) {
      if (discardTrailingNewline) {
        if (buffer[position] === ControlChars.NewLine) {
          lineStart = ++position;
        }
        discardTrailingNewline = false;
      }
      let lineEnd = -1;
      for (; position < bufLength && lineEnd === -1; ++position) {
        switch (buffer[position]) {
          case ControlChars.Colon:
            if (fieldLength === -1) {
              fieldLength = position - lineStart;
            }
            break;
          // \r case below should fallthrough to \n:
          case ControlChars.CarriageReturn:
            discardTrailingNewline = true;
          // eslint-disable-next-line no-fallthrough
          case ControlChars.NewLine:
            lineEnd = position;
            break;
        }
      }
      if (lineEnd === -1) {
        break;
      } else if (lineStart === lineEnd) {
        if (message.event || message.data) {
          if (!message.event)
            throw new Error("Missing message event");
          const event = validateStreamEvent(message.event);
          const data = parseStreamData(event, message.data);
          pending.push({
            event,
            data
          });
          message = { event: "", data: "" };
        }
      } else if (fieldLength > 0) {
        const line = buffer.subarray(lineStart, lineEnd);
        const field = decoder.decode(line.subarray(0, fieldLength));
        const valueOffset = fieldLength + (line[fieldLength + 1] === ControlChars.Space ? 2 : 1);
        const value = decoder.decode(line.subarray(valueOffset));
        switch (field) {
          case "event":
            message.event = value;
            break;
          case "data":
            message.data = message.data ? message.data + "\n" + value : value;
            break;
        }
      }
      lineStart = position;
      fieldLength = -1;
    }
    if (lineStart === bufLength) {
      buffer = void 0;
      const messages = [...pending];
      pending = [];
      return messages;
    } else if (lineStart !== 0) {
      buffer = buffer.subarray(lineStart);
      position -= lineStart;
    }
  };
}

// node_modules/graphql-sse/lib/client.mjs
function createClient2(options) {
  const {
    singleConnection = false,
    lazy = true,
    lazyCloseTimeout = 0,
    onNonLazyError = console.error,
    /**
     * Generates a v4 UUID to be used as the ID using `Math`
     * as the random number generator. Supply your own generator
     * in case you need more uniqueness.
     *
     * Reference: https://gist.github.com/jed/982883
     */
    generateID = function generateUUID() {
      return "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx".replace(/[xy]/g, (c) => {
        const r = Math.random() * 16 | 0, v = c == "x" ? r : r & 3 | 8;
        return v.toString(16);
      });
    },
    retryAttempts = 5,
    retry = async function randomisedExponentialBackoff(retries2) {
      let retryDelay = 1e3;
      for (let i = 0; i < retries2; i++) {
        retryDelay *= 2;
      }
      await new Promise((resolve) => setTimeout(resolve, retryDelay + // add random timeout from 300ms to 3s
      Math.floor(Math.random() * (3e3 - 300) + 300)));
    },
    credentials = "same-origin",
    referrer,
    referrerPolicy,
    onMessage,
    on: clientOn
  } = options;
  const fetchFn = options.fetchFn || fetch;
  const AbortControllerImpl = options.abortControllerImpl || AbortController;
  const client = /* @__PURE__ */ (() => {
    let disposed = false;
    const listeners = [];
    return {
      get disposed() {
        return disposed;
      },
      onDispose(cb) {
        if (disposed) {
          setTimeout(() => cb(), 0);
          return () => {
          };
        }
        listeners.push(cb);
        return () => {
          listeners.splice(listeners.indexOf(cb), 1);
        };
      },
      dispose() {
        if (disposed)
          return;
        disposed = true;
        for (const listener of [...listeners]) {
          listener();
        }
      }
    };
  })();
  let connCtrl, conn, locks = 0, retryingErr = null, retries = 0;
  async function getOrConnect() {
    try {
      if (client.disposed)
        throw new Error("Client has been disposed");
      return await (conn !== null && conn !== void 0 ? conn : conn = (async () => {
        var _a, _b, _c;
        if (retryingErr) {
          await retry(retries);
          if (connCtrl.signal.aborted)
            throw new Error("Connection aborted by the client");
          retries++;
        }
        (_a = clientOn === null || clientOn === void 0 ? void 0 : clientOn.connecting) === null || _a === void 0 ? void 0 : _a.call(clientOn, !!retryingErr);
        connCtrl = new AbortControllerImpl();
        const unlistenDispose = client.onDispose(() => connCtrl.abort());
        connCtrl.signal.addEventListener("abort", () => {
          unlistenDispose();
          conn = void 0;
        });
        const opts = options;
        const url = typeof opts.url === "function" ? await opts.url(void 0) : opts.url;
        if (connCtrl.signal.aborted)
          throw new Error("Connection aborted by the client");
        const headers = typeof opts.headers === "function" ? await opts.headers(void 0) : (_b = opts.headers) !== null && _b !== void 0 ? _b : {};
        if (connCtrl.signal.aborted)
          throw new Error("Connection aborted by the client");
        let res;
        try {
          res = await fetchFn(url, {
            signal: connCtrl.signal,
            method: "PUT",
            credentials,
            referrer,
            referrerPolicy,
            headers
          });
        } catch (err) {
          throw new NetworkError(err);
        }
        if (res.status !== 201)
          throw new NetworkError(res);
        const token = await res.text();
        headers[TOKEN_HEADER_KEY] = token;
        const connected = await connect({
          signal: connCtrl.signal,
          headers,
          credentials,
          referrer,
          referrerPolicy,
          url,
          fetchFn,
          onMessage: (msg) => {
            var _a2;
            (_a2 = clientOn === null || clientOn === void 0 ? void 0 : clientOn.message) === null || _a2 === void 0 ? void 0 : _a2.call(clientOn, msg);
            onMessage === null || onMessage === void 0 ? void 0 : onMessage(msg);
          }
        });
        (_c = clientOn === null || clientOn === void 0 ? void 0 : clientOn.connected) === null || _c === void 0 ? void 0 : _c.call(clientOn, !!retryingErr);
        connected.waitForThrow().catch(() => conn = void 0);
        return connected;
      })());
    } catch (err) {
      conn = void 0;
      throw err;
    }
  }
  if (singleConnection && !lazy) {
    (async () => {
      locks++;
      for (; ; ) {
        try {
          const { waitForThrow } = await getOrConnect();
          await waitForThrow();
        } catch (err) {
          if (client.disposed)
            return;
          if (!(err instanceof NetworkError))
            return onNonLazyError === null || onNonLazyError === void 0 ? void 0 : onNonLazyError(err);
          conn = void 0;
          if (!retryAttempts || retries >= retryAttempts)
            return onNonLazyError === null || onNonLazyError === void 0 ? void 0 : onNonLazyError(err);
          retryingErr = err;
        }
      }
    })();
  }
  function subscribe2(request, sink, on) {
    if (!singleConnection) {
      const control2 = new AbortControllerImpl();
      const unlisten2 = client.onDispose(() => {
        unlisten2();
        control2.abort();
      });
      (async () => {
        var _a, _b, _c, _d, _e;
        let retryingErr2 = null, retries2 = 0;
        for (; ; ) {
          try {
            if (retryingErr2) {
              await retry(retries2);
              if (control2.signal.aborted)
                throw new Error("Connection aborted by the client");
              retries2++;
            }
            (_a = clientOn === null || clientOn === void 0 ? void 0 : clientOn.connecting) === null || _a === void 0 ? void 0 : _a.call(clientOn, !!retryingErr2);
            (_b = on === null || on === void 0 ? void 0 : on.connecting) === null || _b === void 0 ? void 0 : _b.call(on, !!retryingErr2);
            const opts = options;
            const url = typeof opts.url === "function" ? await opts.url(request) : opts.url;
            if (control2.signal.aborted)
              throw new Error("Connection aborted by the client");
            const headers = typeof opts.headers === "function" ? await opts.headers(request) : (_c = opts.headers) !== null && _c !== void 0 ? _c : {};
            if (control2.signal.aborted)
              throw new Error("Connection aborted by the client");
            const { getResults } = await connect({
              signal: control2.signal,
              headers: {
                ...headers,
                "content-type": "application/json; charset=utf-8"
              },
              credentials,
              referrer,
              referrerPolicy,
              url,
              body: JSON.stringify(request),
              fetchFn,
              onMessage: (msg) => {
                var _a2, _b2;
                (_a2 = clientOn === null || clientOn === void 0 ? void 0 : clientOn.message) === null || _a2 === void 0 ? void 0 : _a2.call(clientOn, msg);
                (_b2 = on === null || on === void 0 ? void 0 : on.message) === null || _b2 === void 0 ? void 0 : _b2.call(on, msg);
                onMessage === null || onMessage === void 0 ? void 0 : onMessage(msg);
              }
            });
            (_d = clientOn === null || clientOn === void 0 ? void 0 : clientOn.connected) === null || _d === void 0 ? void 0 : _d.call(clientOn, !!retryingErr2);
            (_e = on === null || on === void 0 ? void 0 : on.connected) === null || _e === void 0 ? void 0 : _e.call(on, !!retryingErr2);
            for await (const result of getResults()) {
              retryingErr2 = null;
              retries2 = 0;
              sink.next(result);
            }
            return control2.abort();
          } catch (err) {
            if (control2.signal.aborted)
              return;
            if (!(err instanceof NetworkError))
              throw err;
            if (!retryAttempts || retries2 >= retryAttempts)
              throw err;
            retryingErr2 = err;
          }
        }
      })().then(() => sink.complete()).catch((err) => sink.error(err));
      return () => control2.abort();
    }
    locks++;
    const control = new AbortControllerImpl();
    const unlisten = client.onDispose(() => {
      unlisten();
      control.abort();
    });
    (async () => {
      const operationId = generateID();
      request = {
        ...request,
        extensions: { ...request.extensions, operationId }
      };
      let complete = null;
      for (; ; ) {
        complete = null;
        try {
          const { url, headers, getResults } = await getOrConnect();
          let res;
          try {
            res = await fetchFn(url, {
              signal: control.signal,
              method: "POST",
              credentials,
              referrer,
              referrerPolicy,
              headers: {
                ...headers,
                "content-type": "application/json; charset=utf-8"
              },
              body: JSON.stringify(request)
            });
          } catch (err) {
            throw new NetworkError(err);
          }
          if (res.status !== 202)
            throw new NetworkError(res);
          complete = async () => {
            let res2;
            try {
              const control2 = new AbortControllerImpl();
              const unlisten2 = client.onDispose(() => {
                unlisten2();
                control2.abort();
              });
              res2 = await fetchFn(url + "?operationId=" + operationId, {
                signal: control2.signal,
                method: "DELETE",
                credentials,
                referrer,
                referrerPolicy,
                headers
              });
            } catch (err) {
              throw new NetworkError(err);
            }
            if (res2.status !== 200)
              throw new NetworkError(res2);
          };
          for await (const result of getResults({
            signal: control.signal,
            operationId
          })) {
            retryingErr = null;
            retries = 0;
            sink.next(result);
          }
          complete = null;
          return control.abort();
        } catch (err) {
          if (control.signal.aborted)
            return await (complete === null || complete === void 0 ? void 0 : complete());
          if (!(err instanceof NetworkError)) {
            control.abort();
            throw err;
          }
          if (lazy) {
            conn = void 0;
          }
          if (!retryAttempts || retries >= retryAttempts) {
            control.abort();
            throw err;
          }
          retryingErr = err;
        } finally {
          if (control.signal.aborted && --locks === 0) {
            if (isFinite(lazyCloseTimeout) && lazyCloseTimeout > 0) {
              setTimeout(() => {
                if (!locks)
                  connCtrl.abort();
              }, lazyCloseTimeout);
            } else {
              connCtrl.abort();
            }
          }
        }
      }
    })().then(() => sink.complete()).catch((err) => sink.error(err));
    return () => control.abort();
  }
  return {
    subscribe: subscribe2,
    iterate(request, on) {
      const pending = [];
      const deferred = {
        done: false,
        error: null,
        resolve: () => {
        }
      };
      const dispose = subscribe2(request, {
        next(val) {
          pending.push(val);
          deferred.resolve();
        },
        error(err) {
          deferred.done = true;
          deferred.error = err;
          deferred.resolve();
        },
        complete() {
          deferred.done = true;
          deferred.resolve();
        }
      }, on);
      const iterator = (async function* iterator2() {
        for (; ; ) {
          if (!pending.length) {
            await new Promise((resolve) => deferred.resolve = resolve);
          }
          while (pending.length) {
            yield pending.shift();
          }
          if (deferred.error) {
            throw deferred.error;
          }
          if (deferred.done) {
            return;
          }
        }
      })();
      iterator.throw = async (err) => {
        if (!deferred.done) {
          deferred.done = true;
          deferred.error = err;
          deferred.resolve();
        }
        return { done: true, value: void 0 };
      };
      iterator.return = async () => {
        dispose();
        return { done: true, value: void 0 };
      };
      return iterator;
    },
    dispose() {
      client.dispose();
    }
  };
}
var NetworkError = class extends Error {
  constructor(msgOrErrOrResponse) {
    let message, response;
    if (isResponseLike(msgOrErrOrResponse)) {
      response = msgOrErrOrResponse;
      message = "Server responded with " + msgOrErrOrResponse.status + ": " + msgOrErrOrResponse.statusText;
    } else if (msgOrErrOrResponse instanceof Error)
      message = msgOrErrOrResponse.message;
    else
      message = String(msgOrErrOrResponse);
    super(message);
    this.name = this.constructor.name;
    this.response = response;
  }
};
function isResponseLike(val) {
  return isObject2(val) && typeof val["ok"] === "boolean" && typeof val["status"] === "number" && typeof val["statusText"] === "string";
}
async function connect(options) {
  const { signal, url, credentials, headers, body, referrer, referrerPolicy, fetchFn, onMessage } = options;
  const waiting = {};
  const queue = {};
  let res;
  try {
    res = await fetchFn(url, {
      signal,
      method: body ? "POST" : "GET",
      credentials,
      referrer,
      referrerPolicy,
      headers: {
        ...headers,
        accept: "text/event-stream"
      },
      body
    });
  } catch (err) {
    throw new NetworkError(err);
  }
  if (!res.ok)
    throw new NetworkError(res);
  if (!res.body)
    throw new Error("Missing response body");
  let error = null;
  let waitingForThrow;
  (async () => {
    var _a;
    try {
      const parse = createParser();
      for await (const chunk of toAsyncIterable(res.body)) {
        if (typeof chunk === "string")
          throw error = new Error(`Unexpected string chunk "${chunk}"`);
        let msgs;
        try {
          msgs = parse(chunk);
        } catch (err) {
          throw error = err;
        }
        if (!msgs)
          continue;
        for (const msg of msgs) {
          try {
            onMessage === null || onMessage === void 0 ? void 0 : onMessage(msg);
          } catch (err) {
            throw error = err;
          }
          const operationId = msg.data && "id" in msg.data ? msg.data.id : "";
          if (!(operationId in queue))
            queue[operationId] = [];
          switch (msg.event) {
            case "next":
              if (operationId)
                queue[operationId].push(msg.data.payload);
              else
                queue[operationId].push(msg.data);
              break;
            case "complete":
              queue[operationId].push("complete");
              break;
            default:
              throw error = new Error(`Unexpected message event "${msg.event}"`);
          }
          (_a = waiting[operationId]) === null || _a === void 0 ? void 0 : _a.proceed();
        }
      }
      if (Object.keys(waiting).length) {
        throw new Error("Connection closed while having active streams");
      }
    } catch (err) {
      if (!error && Object.keys(waiting).length) {
        error = new NetworkError(err);
      } else {
        error = err;
      }
      waitingForThrow === null || waitingForThrow === void 0 ? void 0 : waitingForThrow(error);
    } finally {
      Object.values(waiting).forEach(({ proceed }) => proceed());
    }
  })();
  return {
    url,
    headers,
    waitForThrow: () => new Promise((_, reject) => {
      if (error)
        return reject(error);
      waitingForThrow = reject;
    }),
    async *getResults(options2) {
      var _a;
      const { signal: signal2, operationId = "" } = options2 !== null && options2 !== void 0 ? options2 : {};
      try {
        for (; ; ) {
          while ((_a = queue[operationId]) === null || _a === void 0 ? void 0 : _a.length) {
            const result = queue[operationId].shift();
            if (result === "complete")
              return;
            yield result;
          }
          if (error)
            throw error;
          if (signal2 === null || signal2 === void 0 ? void 0 : signal2.aborted)
            throw new Error("Getting results aborted by the client");
          await new Promise((resolve) => {
            const proceed = () => {
              signal2 === null || signal2 === void 0 ? void 0 : signal2.removeEventListener("abort", proceed);
              delete waiting[operationId];
              resolve();
            };
            signal2 === null || signal2 === void 0 ? void 0 : signal2.addEventListener("abort", proceed);
            waiting[operationId] = { proceed };
          });
        }
      } finally {
        delete queue[operationId];
      }
    }
  };
}
function toAsyncIterable(val) {
  if (typeof Object(val)[Symbol.asyncIterator] === "function") {
    val = val;
    return val;
  }
  return (async function* () {
    const reader = val.getReader();
    let result;
    do {
      result = await reader.read();
      if (result.value !== void 0)
        yield result.value;
    } while (!result.done);
  })();
}

// src/transports.ts
var Refused = class extends Error {
  transport;
  constructor(transport, detail) {
    super(`${transport} refused: ${detail}`);
    this.name = "Refused";
    this.transport = transport;
  }
};
var StreamEnded = class extends Error {
  code;
  constructor(message, code) {
    super(message);
    this.name = "StreamEnded";
    this.code = code;
  }
};
function aborted(signal) {
  return new Promise((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener("abort", () => resolve(), { once: true });
  });
}
function isCloseLike(e) {
  return typeof e === "object" && e !== null && typeof e.code === "number";
}
function websocket(s) {
  const wsURL = s.url.replace(/^http/, "ws");
  let opened = false;
  const client = createClient({
    url: wsURL,
    webSocketImpl: s.webSocketImpl,
    lazy: true,
    retryAttempts: 0,
    connectionAckWaitTimeout: 1e4,
    keepAlive: 15e3,
    connectionParams: () => ({ authorization: `Bearer ${s.token()}` }),
    on: {
      opened: () => {
        opened = true;
      },
      connected: () => s.onOpen()
    }
  });
  return new Promise((resolve, reject) => {
    let settled = false;
    const finish = (err) => {
      if (settled) return;
      settled = true;
      dispose();
      void client.dispose();
      if (err === void 0) resolve();
      else reject(err);
    };
    const dispose = client.subscribe(
      { query: stream, variables: { queue: s.queue, after: s.after() } },
      {
        next: (r) => {
          if (r.errors?.length) finish(fromErrors(r.errors));
          else if (r.data) s.onNotification(r.data.notifications);
        },
        error: (e) => {
          if (Array.isArray(e)) return finish(fromErrors(e));
          if (isCloseLike(e)) {
            if (e.code === 4401 || e.code === 4403) return finish(new MeshgateError("UNAUTHENTICATED", `WebSocket closed ${e.code} ${e.reason ?? ""}`));
            if (!opened) return finish(new Refused("websocket", `closed ${e.code} before opening`));
            return finish(new StreamEnded(`WebSocket closed ${e.code} ${e.reason ?? ""}`, e.code));
          }
          if (!opened) return finish(new Refused("websocket", String(e)));
          finish(new StreamEnded(`WebSocket: ${String(e)}`));
        },
        complete: () => finish(new StreamEnded("stream completed by the gateway"))
      }
    );
    void aborted(s.signal).then(() => finish());
  });
}
function sse(s) {
  let connected = false;
  const client = createClient2({
    url: s.url,
    retryAttempts: 0,
    fetchFn: s.fetchFn,
    headers: () => {
      const h = { authorization: `Bearer ${s.token()}` };
      const after = s.after();
      if (after > 0) h["last-event-id"] = String(after);
      return h;
    }
  });
  return new Promise((resolve, reject) => {
    let settled = false;
    const finish = (err) => {
      if (settled) return;
      settled = true;
      dispose();
      client.dispose();
      if (err === void 0) resolve();
      else reject(err);
    };
    const dispose = client.subscribe(
      { query: stream, variables: { queue: s.queue, after: s.after() } },
      {
        next: (r) => {
          if (r.errors?.length) finish(fromErrors(r.errors));
          else if (r.data) s.onNotification(r.data.notifications);
        },
        error: (e) => {
          if (Array.isArray(e)) return finish(fromErrors(e));
          if (e instanceof NetworkError) {
            const status = e.response?.status;
            if (status === 401 || status === 403) {
              return finish(status === 401 ? new MeshgateError("UNAUTHENTICATED", "SSE 401") : new Refused("sse", "HTTP 403"));
            }
            if (!connected && status !== void 0 && status !== 404 && status !== 503) return finish(new Refused("sse", `HTTP ${status}`));
            return finish(new NetworkFailure(`SSE: ${e.message}`, status, e));
          }
          finish(connected ? new StreamEnded(`SSE: ${String(e)}`) : new NetworkFailure(`SSE: ${String(e)}`, void 0, e));
        },
        complete: () => finish(new StreamEnded("stream completed by the gateway"))
      },
      {
        connected: () => {
          connected = true;
          s.onOpen();
        }
      }
    );
    void aborted(s.signal).then(() => finish());
  });
}
async function poll2(s) {
  const until = Date.now() + s.pollPeriodMs;
  let first = true;
  while (!s.signal.aborted && Date.now() < until) {
    const signal = AbortSignal.any([s.signal, AbortSignal.timeout((s.pollWaitSeconds + 15) * 1e3)]);
    let page;
    try {
      page = await post(
        s.fetchFn,
        s.url,
        s.token(),
        poll,
        { queue: s.queue, after: s.after(), wait: first ? 0 : s.pollWaitSeconds },
        signal
      );
    } catch (err) {
      if (s.signal.aborted) return;
      throw err;
    }
    if (first) {
      first = false;
      s.onOpen();
    }
    for (const n of page.notifications.items) s.onNotification(n);
  }
}

// src/client.ts
var Watch = class extends Emitter {
  /** The watched resource, `scheme:path`. */
  resource;
  /** Proof given to the resource's publisher when subscribing. */
  proof;
  /** Resolves once the resource is subscribed; rejects if it cannot be. */
  ready;
  #client;
  #ended = false;
  #endErr;
  #resolveReady;
  #rejectReady;
  /** @internal */
  constructor(client, resource, proof) {
    super();
    this.#client = client;
    this.resource = resource;
    this.proof = proof;
    this.ready = new Promise((resolve, reject) => {
      this.#resolveReady = resolve;
      this.#rejectReady = reject;
    });
    this.ready.catch(() => {
    });
  }
  /** etag is the last etag known for the resource (undefined if none yet). */
  get etag() {
    return this.#client._etag(this.resource);
  }
  /** ended reports whether the watch has ended. */
  get ended() {
    return this.#ended;
  }
  /** close stops watching and unsubscribes the queue from the resource. */
  async close() {
    await this.#client._unwatch(this);
  }
  /** @internal */
  _subscribed() {
    this.#resolveReady();
  }
  /** @internal */
  _deliver(ev) {
    if (this.#ended) return;
    this.emit("event", ev);
    this.emit(ev.kind, ev);
  }
  /** @internal */
  _end(err) {
    if (this.#ended) return;
    this.#ended = true;
    this.#endErr = err;
    if (err) this.#rejectReady(err);
    else this.#resolveReady();
    this.emit("end", err);
  }
  [Symbol.asyncIterator]() {
    const offs = [];
    const ch = new Channel(() => offs.forEach((f) => f()));
    if (this.#ended) {
      ch.end(this.#endErr);
      return ch;
    }
    offs.push(
      this.on("event", (ev) => ch.push(ev)),
      this.on("end", (err) => ch.end(err))
    );
    return ch;
  }
};
var Renew = class extends Error {
};
var sleep = (ms, signal) => new Promise((resolve) => {
  const done = () => {
    clearTimeout(t);
    signal.removeEventListener("abort", done);
    resolve();
  };
  const t = setTimeout(done, ms);
  signal.addEventListener("abort", done, { once: true });
});
var Client = class extends Emitter {
  #o;
  #urls;
  #tokenFn;
  #closing = new AbortController();
  #urlIdx = 0;
  #token = "";
  #renewTimer;
  #state = "connecting";
  #transport;
  #modeIdx = 0;
  #refusals = 0;
  #fallbackSince = 0;
  #stream;
  #queue;
  #lastSeq = 0;
  #etags = /* @__PURE__ */ new Map();
  // resource → last etag known
  #subscribed = /* @__PURE__ */ new Set();
  // resources subscribed on #queue
  // For a resource whose watch was closed: #queue's last seq once it was
  // unsubscribed. Its notifications up to there, still unread, were
  // queued for the closed watch (#dispatch).
  #fences = /* @__PURE__ */ new Map();
  #watches = /* @__PURE__ */ new Map();
  #saved;
  #chain = Promise.resolve();
  #persistChain = Promise.resolve();
  #invites = /* @__PURE__ */ new Set();
  #loop;
  #stats = { notifications: 0, duplicates: 0, reconnects: 0, queuesCreated: 0, resubscribes: 0, tokenRefreshes: 0, fallbacks: 0, changedWhileAway: 0, etagUnknown: 0 };
  /** @internal use createClient */
  constructor(opts) {
    super();
    const urls = [...opts.url ? [opts.url] : [], ...opts.urls ?? []];
    if (urls.length === 0) throw new TypeError("createClient: url or urls is required");
    if (!opts.token) throw new TypeError("createClient: token is required");
    this.#urls = urls;
    const tok = opts.token;
    this.#tokenFn = typeof tok === "function" ? tok : () => tok;
    const f = opts.fetch ?? globalThis.fetch;
    this.#o = {
      storage: opts.storage,
      storageKey: opts.storageKey ?? "meshgate",
      webSocketImpl: opts.webSocketImpl ?? globalThis.WebSocket,
      transports: opts.transports?.length ? [...opts.transports] : ["websocket", "sse", "poll"],
      queueTtlSeconds: opts.queueTtlSeconds ?? 300,
      minBackoffMs: opts.minBackoffMs ?? 100,
      maxBackoffMs: opts.maxBackoffMs ?? 1e4,
      renewBeforeMs: opts.renewBeforeMs ?? 6e4,
      refusalsBeforeFallback: opts.refusalsBeforeFallback ?? 2,
      retryPreferredAfterMs: opts.retryPreferredAfterMs ?? 6e4,
      pollWaitSeconds: opts.pollWaitSeconds ?? 25,
      fetch: (input, init) => f(input, init)
    };
    if (!this.#o.webSocketImpl) this.#o.transports = this.#o.transports.filter((t) => t !== "websocket");
    this.#loop = this.#run();
  }
  /** state is what the client is doing now; "state" events report changes. */
  get state() {
    return this.#state;
  }
  /** transport is the transport in use (or last tried). */
  get transport() {
    return this.#transport;
  }
  /** queue is the name of the client's current queue, once it has one. */
  get queue() {
    return this.#queue;
  }
  /** lastSeq is the seq of the last notification handled. */
  get lastSeq() {
    return this.#lastSeq;
  }
  /** stats returns the client's counters. */
  stats() {
    return { ...this.#stats, transport: this.#transport, url: this.#url() };
  }
  /** watch subscribes to resource (proof goes to its publisher) and returns
   * its events. knownEtag is the version you hold (from a previous run): if
   * the resource is no longer at it, a CHANGED_WHILE_AWAY comes first.
   * Without it, the etag saved in storage (if any) is used. */
  watch(resource, opts = {}) {
    if (this.#closing.signal.aborted) throw new Error("meshgate: client closed");
    if (this.#watches.has(resource)) throw new Error(`meshgate: already watching ${resource}`);
    const w = new Watch(this, resource, opts.proof);
    this.#watches.set(resource, w);
    if (opts.knownEtag !== void 0 && opts.knownEtag !== this.#etags.get(resource)) {
      this.#etags.set(resource, opts.knownEtag);
      this.#subscribed.delete(resource);
    }
    if (this.#queue) {
      void this.#serial(() => this.#subscribe(w)).catch((err) => this.#subscribeFailed(err));
    }
    return w;
  }
  /** invites iterates INVITE and OVERFLOW events from now on (also emitted
   * as "invite"). */
  invites() {
    let off = () => {
    };
    const ch = new Channel(() => {
      off();
      this.#invites.delete(ch);
    });
    if (this.#closing.signal.aborted) ch.end();
    else {
      this.#invites.add(ch);
      off = this.on("invite", (ev) => ch.push(ev));
    }
    return ch;
  }
  /** close stops the client, deletes its queue and forgets the saved
   * state. Safe to call twice. */
  async close() {
    if (this.#closing.signal.aborted) return this.#loop;
    this.#closing.abort();
    this.#stream?.abort();
    clearTimeout(this.#renewTimer);
    await this.#loop;
    await this.#chain.catch(() => {
    });
    const q = this.#queue;
    for (const w of this.#watches.values()) w._end();
    this.#watches.clear();
    for (const ch of this.#invites) ch.end();
    this.#setState("closed");
    await this.#persistChain.catch(() => {
    });
    if (this.#o.storage) await this.#o.storage.removeItem(this.#o.storageKey);
    if (q) {
      try {
        await post(this.#o.fetch, this.#url(), this.#token, deleteQueue, { name: q }, AbortSignal.timeout(5e3));
      } catch {
      }
    }
  }
  /** @internal */
  _etag(resource) {
    return this.#etags.get(resource);
  }
  /** @internal */
  async _unwatch(w) {
    if (this.#watches.get(w.resource) !== w) return;
    this.#watches.delete(w.resource);
    w._end();
    const q = this.#queue;
    if (!q || !this.#subscribed.has(w.resource)) {
      await this.#serial(async () => {
      });
      return;
    }
    this.#subscribed.delete(w.resource);
    this.#etags.delete(w.resource);
    this.#persist();
    await this.#serial(() => this.#unsubscribe(q, w.resource));
  }
  /** #unsubscribe unsubscribes q from resource; run it on #serial. */
  async #unsubscribe(q, resource) {
    try {
      const { renewQueue: renewQueue2 } = await this.#gql(unsubscribe, { queue: q, resource });
      if (this.#queue === q && renewQueue2.lastSeq > this.#lastSeq) this.#fences.set(resource, renewQueue2.lastSeq);
    } catch {
    }
  }
  #url() {
    return this.#urls[this.#urlIdx % this.#urls.length];
  }
  #setState(s) {
    if (this.#state === s || this.#state === "closed") return;
    this.#state = s;
    this.emit("state", s);
  }
  /** #serial runs queue and subscription changes one at a time. */
  #serial(fn) {
    const p = this.#chain.then(fn, fn);
    this.#chain = p.catch(() => {
    });
    return p;
  }
  #backoff(attempt) {
    const cap = Math.min(this.#o.maxBackoffMs, this.#o.minBackoffMs * 2 ** Math.min(attempt, 16));
    return Math.random() * cap;
  }
  async #refreshToken() {
    const t = await this.#tokenFn();
    if (this.#token !== "") this.#stats.tokenRefreshes++;
    this.#token = t;
    this.#scheduleRenewal();
  }
  /** #scheduleRenewal renews the token before it expires; a live stream is
   * then reopened with the new token and resumes after the last seq, so
   * nothing is lost. */
  #scheduleRenewal() {
    clearTimeout(this.#renewTimer);
    const exp = tokenExpiry(this.#token);
    if (exp === void 0 || this.#closing.signal.aborted) return;
    const left = exp - Date.now();
    const wait = left > this.#o.renewBeforeMs ? left - this.#o.renewBeforeMs : Math.max(0, left / 2);
    this.#renewTimer = setTimeout(() => {
      this.#refreshToken().then(
        () => this.#stream?.abort(new Renew("token renewed")),
        (err) => {
          this.emit("error", err instanceof Error ? err : new Error(String(err)));
          if (!this.#closing.signal.aborted) this.#renewTimer = setTimeout(() => this.#scheduleRenewal(), 1e3);
        }
      );
    }, wait);
  }
  /** #gql posts one operation to the current node, renewing the token once
   * if the gateway refuses it. */
  async #gql(query, variables) {
    const signal = AbortSignal.any([this.#closing.signal, AbortSignal.timeout(15e3)]);
    try {
      return await post(this.#o.fetch, this.#url(), this.#token, query, variables, signal);
    } catch (err) {
      if (!isCode(err, "UNAUTHENTICATED")) throw err;
      await this.#refreshToken();
      return await post(this.#o.fetch, this.#url(), this.#token, query, variables, signal);
    }
  }
  async #load() {
    if (!this.#o.storage) return;
    const saved = parseSaved(await this.#o.storage.getItem(this.#o.storageKey));
    if (!saved) return;
    this.#saved = saved;
    for (const [r, e] of Object.entries(saved.etags)) if (!this.#etags.has(r)) this.#etags.set(r, e);
  }
  /** #persist saves the queue, last seq and etags, in order. */
  #persist() {
    const st = this.#o.storage;
    if (!st || !this.#queue || this.#closing.signal.aborted) return;
    const etags = {};
    for (const r of this.#subscribed) {
      const e = this.#etags.get(r);
      if (e !== void 0) etags[r] = e;
    }
    const v = JSON.stringify({ v: 1, queue: this.#queue, lastSeq: this.#lastSeq, etags });
    const key = this.#o.storageKey;
    this.#persistChain = this.#persistChain.then(() => st.setItem(key, v)).catch(() => {
    });
  }
  /** #ensureQueue makes sure the client has a live queue with every watch
   * subscribed: it renews the queue it knows (from this run or storage),
   * and when the gateway lost it (QUEUE_NOT_FOUND) makes a new one and
   * subscribes again, reporting what changed while away. */
  async #ensureQueue() {
    if (!this.#queue && this.#saved) {
      this.#queue = this.#saved.queue;
      this.#lastSeq = this.#saved.lastSeq;
      for (const r of Object.keys(this.#saved.etags)) this.#subscribed.add(r);
      this.#saved = void 0;
    }
    if (this.#queue) {
      try {
        await this.#gql(renewQueue, { name: this.#queue });
      } catch (err) {
        if (!isCode(err, "QUEUE_NOT_FOUND")) throw err;
        this.#queue = void 0;
      }
    }
    if (!this.#queue) {
      const { createQueue: createQueue2 } = await this.#gql(createQueue, {
        ttl: this.#o.queueTtlSeconds
      });
      this.#stats.queuesCreated++;
      this.#queue = createQueue2.name;
      this.#lastSeq = 0;
      this.#subscribed.clear();
      this.#fences.clear();
      this.#persist();
    }
    for (const w of [...this.#watches.values()]) {
      try {
        await this.#subscribe(w);
      } catch (err) {
        this.#subscribeFailed(err);
        if (err instanceof NetworkFailure || isCode(err, "UNAVAILABLE") || isCode(err, "QUEUE_NOT_FOUND")) throw err;
      }
    }
  }
  /** #subscribe subscribes the queue to w's resource unless it already is,
   * and reports a changed etag. A refusal (FORBIDDEN, …) ends the watch;
   * a failure of the node or network is thrown, and retried. */
  async #subscribe(w) {
    const q = this.#queue;
    if (!q || this.#watches.get(w.resource) !== w) return;
    if (this.#subscribed.has(w.resource)) return w._subscribed();
    const res = await this.#ask(q, w, null);
    if (!res || this.#queue !== q) return;
    if (this.#watches.get(w.resource) !== w) {
      await this.#unsubscribe(q, w.resource);
      return;
    }
    const known = this.#etags.get(w.resource);
    const etag = res.etag;
    const unknown = res.etagUnknown || known !== void 0 && known !== "" && etag === "";
    if (!unknown) this.#etags.set(w.resource, etag);
    const firstTime = !this.#subscribed.has(w.resource);
    this.#subscribed.add(w.resource);
    if (this.#stats.queuesCreated > 1 || known !== void 0) this.#stats.resubscribes++;
    this.#persist();
    w._subscribed();
    if (unknown && firstTime) {
      this.#stats.etagUnknown++;
      w._deliver({ kind: "ETAG_UNKNOWN", resource: w.resource, etag: "", seq: 0, publishedAt: (/* @__PURE__ */ new Date()).toISOString(), payload: null });
    } else if (!unknown && known !== void 0 && known !== etag && firstTime) {
      this.#stats.changedWhileAway++;
      w._deliver({ kind: "CHANGED_WHILE_AWAY", resource: w.resource, etag, seq: 0, publishedAt: (/* @__PURE__ */ new Date()).toISOString(), payload: null });
    }
  }
  /** #ask subscribes q to w's resource, naming knownEtag (null: none),
   * and returns the answer without taking it. A refusal (FORBIDDEN, …)
   * ends the watch and returns undefined; a failure of the node or network
   * is thrown. */
  async #ask(q, w, knownEtag) {
    try {
      const res = await this.#gql(subscribe, {
        queue: q,
        resource: w.resource,
        proof: w.proof ?? null,
        knownEtag
      });
      return res.subscribe;
    } catch (err) {
      if (err instanceof MeshgateError && !["UNAVAILABLE", "QUEUE_NOT_FOUND", "UNAUTHENTICATED"].includes(err.code)) {
        this.#watches.delete(w.resource);
        w._end(err);
        return void 0;
      }
      throw err;
    }
  }
  /** #resubscribe subscribes the queue to w's resource again after an
   * OVERFLOW, without taking the answer. The notifications still queued
   * after the OVERFLOW are newer than those dropped but may be older than
   * the answer: a watch that took it would go back when it read them. So
   * it names the last etag it took (knownEtag); when the answer differs,
   * the gateway appends a RESYNC carrying it after everything queued, and
   * the watch reaches it by reading on. When the answer is that etag, the
   * watch is current. */
  async #resubscribe(w) {
    const q = this.#queue;
    if (!q || this.#watches.get(w.resource) !== w) return;
    if (!this.#subscribed.has(w.resource)) return this.#subscribe(w);
    let known = this.#etags.get(w.resource) ?? "";
    if (known === "") {
      const res = await this.#ask(q, w, null);
      if (!res) return;
      if (res.etag === "" && !res.etagUnknown) {
        this.#stats.resubscribes++;
        return;
      }
      known = noEtag();
    }
    if (await this.#ask(q, w, known)) this.#stats.resubscribes++;
  }
  /** #afterOverflow runs #resubscribe for w after an OVERFLOW.
   * Invariant: after an OVERFLOW every watch is subscribed again naming its
   * etag, or stops watching: the RESYNC that subscribe queues is all that
   * brings back a resource whose changes were dropped. So a failure of the
   * node or network is retried, with backoff, until it works or the watch,
   * its queue or the client is gone. A refusal ends the watch (#ask); a
   * lost queue is made again by the loop, which subscribes every watch. */
  async #afterOverflow(w) {
    const q = this.#queue;
    for (let attempt = 0; ; attempt++) {
      try {
        await this.#serial(() => this.#resubscribe(w));
        return;
      } catch (err) {
        this.#subscribeFailed(err);
        if (err instanceof MeshgateError && err.code !== "UNAVAILABLE") return;
      }
      await sleep(this.#backoff(attempt), this.#closing.signal);
      if (this.#closing.signal.aborted || this.#queue !== q || this.#watches.get(w.resource) !== w) return;
    }
  }
  #subscribeFailed(err) {
    if (isCode(err, "QUEUE_NOT_FOUND")) this.#stream?.abort();
    this.emit("error", err instanceof Error ? err : new Error(String(err)));
  }
  /** #dispatch hands one notification to its watch, once: a seq not above
   * the last one handled is a duplicate (a replay after a reconnection). */
  #dispatch(n) {
    if (n.seq <= this.#lastSeq) {
      this.#stats.duplicates++;
      return;
    }
    this.#lastSeq = n.seq;
    this.#stats.notifications++;
    const resource = n.resource ?? "";
    switch (n.kind) {
      case "INVITE":
      case "OVERFLOW": {
        const ev = { kind: n.kind, seq: n.seq, publishedAt: n.publishedAt, payload: n.payload };
        if (n.from) ev.from = `${n.from.user}/${n.from.device}`;
        this.emit("invite", ev);
        if (n.kind === "OVERFLOW") {
          for (const w of [...this.#watches.values()]) void this.#afterOverflow(w);
        }
        break;
      }
      case "CHANGED":
      case "RESYNC":
      case "REVOKED": {
        if (!this.#watches.has(resource) && !this.#subscribed.has(resource)) break;
        const fence = this.#fences.get(resource);
        if (fence !== void 0 && n.seq <= fence) break;
        this.#fences.delete(resource);
        const unknown = n.kind === "RESYNC" && n.etagUnknown;
        if (n.kind !== "REVOKED" && n.etag != null && !unknown) this.#etags.set(resource, n.etag);
        const w = this.#watches.get(resource);
        if (unknown && w) this.#stats.etagUnknown++;
        w?._deliver({ kind: unknown ? "ETAG_UNKNOWN" : n.kind, resource, etag: unknown ? "" : n.etag ?? "", seq: n.seq, publishedAt: n.publishedAt, payload: n.payload });
        if (n.kind === "REVOKED") {
          this.#subscribed.delete(resource);
          this.#etags.delete(resource);
          if (w) {
            this.#watches.delete(resource);
            w._end();
          }
        }
        break;
      }
    }
    this.#persist();
  }
  #pickTransport() {
    const ts = this.#o.transports;
    if (this.#modeIdx > 0 && Date.now() - this.#fallbackSince > this.#o.retryPreferredAfterMs) {
      this.#modeIdx = 0;
      this.#refusals = 0;
    }
    return ts[Math.min(this.#modeIdx, ts.length - 1)];
  }
  /** #run keeps the queue read until close(). */
  async #run() {
    const closing = this.#closing.signal;
    try {
      await this.#load();
    } catch (err) {
      this.emit("error", err instanceof Error ? err : new Error(String(err)));
    }
    let attempt = 0;
    while (!closing.aborted) {
      const started = Date.now();
      let err;
      const stream2 = new AbortController();
      this.#stream = stream2;
      try {
        if (this.#token === "") await this.#refreshToken();
        await this.#serial(() => this.#ensureQueue());
        const t = this.#pickTransport();
        this.#transport = t;
        const run = t === "websocket" ? websocket : t === "sse" ? sse : poll2;
        const session = {
          url: this.#url(),
          token: () => this.#token,
          queue: this.#queue,
          after: () => this.#lastSeq,
          onOpen: () => {
            this.#refusals = 0;
            attempt = 0;
            this.#setState(t === "poll" ? "polling" : "live");
          },
          onNotification: (n) => this.#dispatch(n),
          signal: AbortSignal.any([closing, stream2.signal]),
          fetchFn: this.#o.fetch,
          webSocketImpl: this.#o.webSocketImpl,
          pollWaitSeconds: this.#o.pollWaitSeconds,
          pollPeriodMs: this.#o.retryPreferredAfterMs
        };
        if (!stream2.signal.aborted) await run(session);
      } catch (e) {
        err = e;
      }
      if (closing.aborted) break;
      if (Date.now() - started > 5e3) attempt = 0;
      if (stream2.signal.reason instanceof Renew) continue;
      if (err === void 0 && !stream2.signal.aborted) continue;
      this.#stats.reconnects++;
      this.#setState("recovering");
      if (err !== void 0) this.emit("error", err instanceof Error ? err : new Error(String(err)));
      if (err instanceof Refused) {
        if (++this.#refusals >= this.#o.refusalsBeforeFallback && this.#modeIdx < this.#o.transports.length - 1) {
          this.#modeIdx++;
          this.#refusals = 0;
          this.#fallbackSince = Date.now();
          this.#stats.fallbacks++;
        }
        await sleep(this.#backoff(0), closing);
        continue;
      }
      if (isCode(err, "QUEUE_NOT_FOUND")) {
        await sleep(this.#backoff(attempt++), closing);
        continue;
      }
      if (isCode(err, "UNAUTHENTICATED") || isCode(err, "FORBIDDEN")) {
        try {
          await this.#refreshToken();
        } catch (e) {
          this.emit("error", e instanceof Error ? e : new Error(String(e)));
        }
        await sleep(this.#backoff(attempt++), closing);
        continue;
      }
      if (err !== void 0) this.#urlIdx++;
      await sleep(this.#backoff(attempt++), closing);
    }
    clearTimeout(this.#renewTimer);
  }
};
function noEtag() {
  const b = crypto.getRandomValues(new Uint8Array(16));
  return "meshgate-client-none-" + Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}
function createClient3(opts) {
  return new Client(opts);
}
export {
  Client,
  MeshgateError,
  NetworkFailure,
  Watch,
  createClient3 as createClient,
  isCode,
  memoryStorage
};

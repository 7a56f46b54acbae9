// GraphQL over HTTP POST, with the gateway's typed errors.

/** MeshgateError is an error the gateway answered, with its
 * `extensions.code` (QUEUE_NOT_FOUND, FORBIDDEN, UNAUTHENTICATED,
 * UNAVAILABLE, BAD_REQUEST, …). */
export class MeshgateError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(`${code}: ${message}`);
    this.name = 'MeshgateError';
    this.code = code;
  }
}

/** NetworkFailure is a request that got no GraphQL answer: the node is down,
 * the network cut, or a proxy answered instead of the gateway. */
export class NetworkFailure extends Error {
  readonly status: number | undefined;
  constructor(message: string, status?: number, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'NetworkFailure';
    this.status = status;
  }
}

/** isCode reports whether err is a MeshgateError with that code. */
export function isCode(err: unknown, code: string): boolean {
  return err instanceof MeshgateError && err.code === code;
}

interface GraphQLErrorLike {
  message?: string;
  extensions?: { code?: unknown };
}

/** fromErrors makes a MeshgateError of a GraphQL errors array. */
export function fromErrors(errors: readonly GraphQLErrorLike[]): MeshgateError {
  const e = errors[0] ?? {};
  const code = typeof e.extensions?.code === 'string' ? e.extensions.code : 'INTERNAL';
  return new MeshgateError(code, e.message ?? 'unknown error');
}

export type FetchFn = (input: string, init: RequestInit) => Promise<Response>;

/** post runs one operation against url as token. */
export async function post<T>(
  fetchFn: FetchFn,
  url: string,
  token: string,
  query: string,
  variables: object,
  signal: AbortSignal,
): Promise<T> {
  let res: Response;
  try {
    res = await fetchFn(url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/graphql-response+json, application/json',
        authorization: `Bearer ${token}`,
      },
      body: JSON.stringify({ query, variables }),
      signal,
    });
  } catch (err) {
    if (signal.aborted) throw err;
    throw new NetworkFailure(`POST ${url}: ${String(err)}`, undefined, err);
  }
  let body: { data?: T | null; errors?: GraphQLErrorLike[] };
  try {
    body = (await res.json()) as typeof body;
  } catch (err) {
    if (signal.aborted) throw err;
    throw new NetworkFailure(`POST ${url}: ${res.status} ${res.statusText}: not a GraphQL response`, res.status, err);
  }
  if (body.errors?.length) throw fromErrors(body.errors);
  if (body.data == null) throw new NetworkFailure(`POST ${url}: ${res.status}: no data`, res.status);
  return body.data;
}

/** tokenExpiry reads a JWT's exp claim in ms since the epoch, unverified
 * (the gateway verifies); undefined if the token has none. */
export function tokenExpiry(token: string): number | undefined {
  const part = token.split('.')[1];
  if (!part) return undefined;
  try {
    const json = atob(part.replace(/-/g, '+').replace(/_/g, '/').padEnd(Math.ceil(part.length / 4) * 4, '='));
    const exp = (JSON.parse(json) as { exp?: unknown }).exp;
    return typeof exp === 'number' ? exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}

// The GraphQL operations the client sends. GraphQL Code Generator reads
// them (the magic comment marks each one) and writes their result and
// variable types to generated.ts; `npm run codegen` regenerates it, and CI
// fails when the committed file is stale.

export const createQueue = /* GraphQL */ `
  mutation CreateQueue($ttl: Int) {
    createQueue(ttlSeconds: $ttl) {
      name
      lastSeq
    }
  }
`;

export const renewQueue = /* GraphQL */ `
  mutation RenewQueue($name: String!) {
    renewQueue(name: $name) {
      name
      lastSeq
    }
  }
`;

export const deleteQueue = /* GraphQL */ `
  mutation DeleteQueue($name: String!) {
    deleteQueue(name: $name)
  }
`;

export const subscribe = /* GraphQL */ `
  mutation Subscribe($queue: String!, $resource: String!, $proof: String, $knownEtag: String) {
    subscribe(queue: $queue, resource: $resource, proof: $proof, knownEtag: $knownEtag) {
      resource
      etag
      etagUnknown
    }
  }
`;

// A mutation's fields run in turn: lastSeq is read once the subscription
// is gone, so every notification it queued has a seq not above it.
export const unsubscribe = /* GraphQL */ `
  mutation Unsubscribe($queue: String!, $resource: String!) {
    unsubscribe(queue: $queue, resource: $resource)
    renewQueue(name: $queue) {
      lastSeq
    }
  }
`;

export const poll = /* GraphQL */ `
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
`;

export const stream = /* GraphQL */ `
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
`;

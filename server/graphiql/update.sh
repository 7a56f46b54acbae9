#!/usr/bin/env bash
# Re-vendors GraphiQL's assets from npm at the versions in VERSIONS.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
npm pack graphiql@3.8.3 react@18.3.1 react-dom@18.3.1 graphql-ws@5.16.0 >/dev/null
for f in *.tgz; do mkdir "${f%.tgz}"; tar xzf "$f" -C "${f%.tgz}"; done
for f in graphiql-3.8.3/package/graphiql.min.js graphiql-3.8.3/package/graphiql.min.css \
  react-18.3.1/package/umd/react.production.min.js react-dom-18.3.1/package/umd/react-dom.production.min.js \
  graphql-ws-5.16.0/package/umd/graphql-ws.min.js; do
  gzip -9 -n -c "$f" > "$here/$(basename "$f").gz"
done

package graph

// gqlgen resolves the paths in gqlgen.yml from the working directory, so
// it runs from the module root. Its version is pinned by go.mod's tool directive.
//go:generate sh -c "cd .. && go tool gqlgen generate --config gqlgen.yml"

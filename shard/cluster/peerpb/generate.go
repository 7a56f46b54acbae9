package peerpb

//go:generate go tool buf generate --template ../../../buf.gen.yaml

package publisherpb

//go:generate go tool buf generate --template ../../buf.gen.yaml

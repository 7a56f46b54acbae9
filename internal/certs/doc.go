// Package certs makes and loads the TLS material meshgate runs on: the
// self-signed development certificate clients reach the gateway with
// (dev.go), the development cluster CA that issues each node its
// certificate for mutual TLS between nodes, and the node-to-node TLS
// configurations made from a CA or from files (cluster.go). Nothing here
// listens or dials: the server and the cluster take the tls.Configs.
package certs

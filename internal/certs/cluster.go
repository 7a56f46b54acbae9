package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Development cluster CA files in the data directory.
const (
	DevCAFile    = "cluster-ca.pem"
	DevCAKeyFile = "cluster-ca-key.pem"
)

// EnsureDevCA returns the paths of a development cluster CA in dataDir,
// creating it if absent. Nodes sharing it trust each other: give every
// node of a development cluster the same data directory or a copy of
// these two files. Production clusters pass their own CA (see TLSFromFiles).
func EnsureDevCA(dataDir string) (caPath, keyPath string, created bool, err error) {
	caPath, keyPath = filepath.Join(dataDir, DevCAFile), filepath.Join(dataDir, DevCAKeyFile)
	if _, err := os.Stat(caPath); err == nil {
		return caPath, keyPath, false, nil
	}
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: "meshgate cluster development CA", Organization: []string{"meshgate"}},
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	if err := selfSign(dataDir, caPath, keyPath, tmpl, 10); err != nil {
		return "", "", false, err
	}
	return caPath, keyPath, true, nil
}

// TLSFromCA issues this node a fresh certificate from the CA (kept in
// memory) and returns the node-to-node TLS configurations.
func TLSFromCA(caPath, caKeyPath, nodeName string) (server, client *tls.Config, err error) {
	ca, err := tls.LoadX509KeyPair(caPath, caKeyPath)
	if err != nil {
		return nil, nil, fmt.Errorf("cluster CA: %w", err)
	}
	caCert, err := x509.ParseCertificate(ca.Certificate[0])
	if err != nil {
		return nil, nil, fmt.Errorf("cluster CA: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: nodeName, Organization: []string{"meshgate cluster"}},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:    []string{nodeName},
	}
	stamp(tmpl, 1)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, ca.PrivateKey)
	if err != nil {
		return nil, nil, fmt.Errorf("node certificate: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	return nodeConfigs(tls.Certificate{Certificate: [][]byte{der, caCert.Raw}, PrivateKey: key}, pool)
}

// TLSFromFiles loads a node certificate and key issued by the cluster CA
// in caPath (all PEM).
func TLSFromFiles(caPath, certPath, keyPath string) (server, client *tls.Config, err error) {
	b, err := os.ReadFile(caPath)
	if err != nil {
		return nil, nil, fmt.Errorf("cluster CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, nil, fmt.Errorf("cluster CA %s: no certificate", caPath)
	}
	cert, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		return nil, nil, fmt.Errorf("cluster certificate: %w", err)
	}
	return nodeConfigs(cert, pool)
}

// nodeConfigs: both sides present a certificate and accept exactly those
// the cluster CA issued. Peers are dialled by address, so names are not
// checked: membership in the cluster is the CA's signature. Neither side
// resumes a session (no tickets, no client session cache), so every
// connection is verified.
func nodeConfigs(cert tls.Certificate, pool *x509.CertPool) (*tls.Config, *tls.Config, error) {
	verify := func(raw [][]byte, _ [][]*x509.Certificate) error {
		if len(raw) == 0 {
			return errors.New("cluster: peer sent no certificate")
		}
		certs := make([]*x509.Certificate, len(raw))
		for i, r := range raw {
			c, err := x509.ParseCertificate(r)
			if err != nil {
				return err
			}
			certs[i] = c
		}
		inter := x509.NewCertPool()
		for _, c := range certs[1:] {
			inter.AddCert(c)
		}
		_, err := certs[0].Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
		if err != nil {
			return fmt.Errorf("cluster: peer certificate not issued by the cluster CA: %w", err)
		}
		return nil
	}
	server := &tls.Config{
		Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13,
		ClientAuth: tls.RequireAnyClientCert, VerifyPeerCertificate: verify,
		SessionTicketsDisabled: true, // a resumed session skips verify
	}
	client := &tls.Config{
		Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13,
		InsecureSkipVerify: true, VerifyPeerCertificate: verify, // verify replaces the name check, not the chain check
	}
	return server, client, nil
}

package server

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Development certificate files in the data directory.
const (
	DevCertFile = "tls-cert.pem"
	DevKeyPEM   = "tls-key.pem"
)

// EnsureDevCert returns the paths of a self-signed ECDSA certificate in
// dataDir for localhost, ::1, 127.0.0.1-16 and every one of hosts (IP
// addresses or names, such as the --listen host; empty and unspecified
// ones are skipped), and its SHA-256 fingerprint. The certificate is
// created if absent, and issued anew when it does not cover a host: the
// address a client is told to use always verifies. created reports
// whether it was made now.
func EnsureDevCert(dataDir string, hosts ...string) (certPath, keyPath, fingerprint string, created bool, err error) {
	certPath = filepath.Join(dataDir, DevCertFile)
	keyPath = filepath.Join(dataDir, DevKeyPEM)
	var extra []string
	for _, h := range hosts {
		if ip := net.ParseIP(h); h != "" && (ip == nil || !ip.IsUnspecified()) {
			extra = append(extra, h)
		}
	}
	if !covers(certPath, extra) {
		if err := makeDevCert(dataDir, certPath, keyPath, extra); err != nil {
			return "", "", "", false, fmt.Errorf("dev certificate: %w", err)
		}
		created = true
	}
	fingerprint, err = Fingerprint(certPath)
	return certPath, keyPath, fingerprint, created, err
}

// covers reports whether the certificate at certPath exists and verifies
// for every host.
func covers(certPath string, hosts []string) bool {
	b, err := os.ReadFile(certPath)
	if err != nil {
		return false
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return false
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return false
	}
	for _, h := range hosts {
		if cert.VerifyHostname(h) != nil {
			return false
		}
	}
	return true
}

func makeDevCert(dataDir, certPath, keyPath string, hosts []string) error {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "meshgate development", Organization: []string{"meshgate"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(2, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           devIPs(),
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "localhost" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := writePEM(keyPath, "PRIVATE KEY", keyDER, 0o600); err != nil {
		return err
	}
	return writePEM(certPath, "CERTIFICATE", der, 0o644)
}

// devIPs are the addresses the development certificate covers: loopback,
// including 127.0.0.2-16 for development clusters on one machine.
func devIPs() []net.IP {
	ips := []net.IP{net.IPv6loopback}
	for i := byte(1); i <= 16; i++ {
		ips = append(ips, net.IPv4(127, 0, 0, i))
	}
	return ips
}

func writePEM(path, typ string, der []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if err := pem.Encode(f, &pem.Block{Type: typ, Bytes: der}); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Fingerprint returns the SHA-256 fingerprint of a PEM certificate file,
// as colon-separated hex.
func Fingerprint(certPath string) (string, error) {
	b, err := os.ReadFile(certPath)
	if err != nil {
		return "", err
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return "", fmt.Errorf("%s: no PEM block", certPath)
	}
	sum := sha256.Sum256(blk.Bytes)
	h := strings.ToUpper(hex.EncodeToString(sum[:]))
	var parts []string
	for i := 0; i < len(h); i += 2 {
		parts = append(parts, h[i:i+2])
	}
	return strings.Join(parts, ":"), nil
}

// TLSConfig loads the certificate pair with modern defaults.
func TLSConfig(certPath, keyPath string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
		NextProtos:   []string{"h2", "http/1.1"},
	}, nil
}

package certs

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"fmt"
	"net"
	"path/filepath"
	"strings"
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
		if err := selfSign(dataDir, certPath, keyPath, devTemplate(extra), 2); err != nil {
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
	cert, err := readCert(certPath)
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

// devTemplate is the development certificate for localhost, loopback
// (including 127.0.0.2-16, for development clusters on one machine) and
// hosts.
func devTemplate(hosts []string) *x509.Certificate {
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: "meshgate development", Organization: []string{"meshgate"}},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv6loopback},
	}
	for i := byte(1); i <= 16; i++ {
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.IPv4(127, 0, 0, i))
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "localhost" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	return tmpl
}

// Fingerprint returns the SHA-256 fingerprint of a PEM certificate file,
// as colon-separated hex.
func Fingerprint(certPath string) (string, error) {
	cert, err := readCert(certPath)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(cert.Raw)
	h := strings.ToUpper(hex.EncodeToString(sum[:]))
	var parts []string
	for i := 0; i < len(h); i += 2 {
		parts = append(parts, h[i:i+2])
	}
	return strings.Join(parts, ":"), nil
}

// TLSConfig loads the certificate pair with modern defaults, for the
// gateway's clients.
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

func errNoPEM(path string) error { return fmt.Errorf("%s: no PEM block", path) }

package node

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/entente-org/entente/internal/config"
	"github.com/entente-org/entente/internal/devcert"
)

// serverTLS returns the HTTPS server's TLS configuration: the operator's
// certificate, or a self-signed one made at first start and kept in
// data_dir/tls for the next.
func serverTLS(cfg config.Config, log *slog.Logger) (*tls.Config, error) {
	certFile, keyFile := cfg.HTTP.TLSCert, cfg.HTTP.TLSKey
	if certFile == "" {
		var err error
		certFile, keyFile, err = selfSigned(cfg, log)
		if err != nil {
			return nil, err
		}
	}
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("http.tls_cert/http.tls_key: %w", err)
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{pair},
		NextProtos:   []string{"h2", "http/1.1"},
	}, nil
}

func selfSigned(cfg config.Config, log *slog.Logger) (string, string, error) {
	dir := filepath.Join(cfg.Node.DataDir, "tls")
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if _, err := os.Stat(certFile); err == nil {
		return certFile, keyFile, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", "", fmt.Errorf("self-signed certificate: %w", err)
	}
	u, _ := url.Parse(cfg.Node.PublicURL)
	hosts := []string{u.Hostname(), "localhost", "127.0.0.1", "::1"}
	certPEM, keyPEM, err := devcert.SelfSigned(hosts, 365*24*time.Hour)
	if err != nil {
		return "", "", fmt.Errorf("self-signed certificate: %w", err)
	}
	if _, _, err := devcert.WriteFiles(dir, certPEM, keyPEM); err != nil {
		return "", "", fmt.Errorf("self-signed certificate: %w", err)
	}
	log.Warn("no http.tls_cert configured: made a self-signed certificate for development", "file", certFile)
	return certFile, keyFile, nil
}

// peerRoots is the system pool plus the operator's extra CAs, if any.
func peerRoots(caFile string) (*x509.CertPool, error) {
	if caFile == "" {
		return nil, nil
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	data, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("federation.ca_file: %w", err)
	}
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("federation.ca_file: %s holds no PEM certificate", caFile)
	}
	return pool, nil
}

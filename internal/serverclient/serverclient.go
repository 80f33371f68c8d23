// Package serverclient holds what the hub's roles need to call the usage
// server: an HTTP client that trusts the server's CA, and the projected
// ServiceAccount token they show it.
package serverclient

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"
)

// HTTPClient trusts the CA in caFile (empty: the system roots).
func HTTPClient(caFile string) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("reading the server CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("no certificate in %s", caFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}, nil
}

// Post sends body as JSON to url with the bearer token that token returns,
// and returns the server's answer, whose body the caller must close.
func Post(ctx context.Context, c *http.Client, url string, token func() (string, error), body any) (*http.Response, error) {
	raw, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	bearer, err := token()
	if err != nil {
		return nil, fmt.Errorf("reading the ServiceAccount token: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+bearer)
	return c.Do(req)
}

// FileToken reads a projected ServiceAccount token, which the kubelet
// rotates, at most once a minute.
func FileToken(path string) func() (string, error) {
	var mu sync.Mutex
	var cached string
	var readAt time.Time
	return func() (string, error) {
		mu.Lock()
		defer mu.Unlock()
		if cached != "" && time.Since(readAt) < time.Minute {
			return cached, nil
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			return "", err
		}
		cached, readAt = strings.TrimSpace(string(raw)), time.Now()
		return cached, nil
	}
}

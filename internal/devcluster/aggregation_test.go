package devcluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// TestAggregatedAPIThroughTheAggregator registers a server on loopback as
// an aggregated API and calls it through kube-apiserver: the aggregator
// reaches it through the ExternalName Service, verifies its certificate
// against the APIService's caBundle, and presents the front-proxy client
// certificate with the caller's name in X-Remote-User, which the server
// trusts only from a certificate that the CA published in
// kube-system/extension-apiserver-authentication signed.
func TestAggregatedAPIThroughTheAggregator(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	cluster, err := Start(Options{})
	g.Expect(err).NotTo(HaveOccurred())
	defer func() { _ = cluster.Stop() }()

	// The front-proxy CA, as any aggregated server reads it.
	cl, err := client.New(cluster.Config, client.Options{})
	g.Expect(err).NotTo(HaveOccurred())
	authn := &corev1.ConfigMap{}
	g.Expect(cl.Get(ctx, client.ObjectKey{Namespace: "kube-system", Name: "extension-apiserver-authentication"}, authn)).To(Succeed())
	frontProxy := x509.NewCertPool()
	g.Expect(frontProxy.AppendCertsFromPEM([]byte(authn.Data["requestheader-client-ca-file"]))).To(BeTrue())

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	g.Expect(err).NotTo(HaveOccurred())
	port := ln.Addr().(*net.TCPAddr).Port
	api := AggregatedAPI{Group: "test.hub.minimax.io", Version: "v1", Namespace: "hub-system", Service: "test-api", Port: port}
	serving, err := cluster.AggregatedAPICertificate(api)
	g.Expect(err).NotTo(HaveOccurred())
	pair, err := tls.X509KeyPair(serving.CertPEM, serving.KeyPEM)
	g.Expect(err).NotTo(HaveOccurred())

	seen := make(chan string, 100)
	mux := http.NewServeMux()
	mux.HandleFunc("/apis/test.hub.minimax.io/v1", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "test.hub.minimax.io/v1",
			"resources": []map[string]any{{"name": "things", "namespaced": false, "kind": "Thing", "verbs": []string{"list"}}}})
	})
	mux.HandleFunc("/apis/test.hub.minimax.io/v1/things", func(w http.ResponseWriter, r *http.Request) {
		if len(r.TLS.PeerCertificates) == 0 || r.TLS.PeerCertificates[0].Subject.CommonName != frontProxyClientName {
			http.Error(w, "not the front proxy", http.StatusUnauthorized)
			return
		}
		seen <- r.Header.Get("X-Remote-User")
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"kind":"ThingList","apiVersion":"test.hub.minimax.io/v1","metadata":{},"items":[]}`))
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, TLSConfig: &tls.Config{
		Certificates: []tls.Certificate{pair}, ClientCAs: frontProxy, ClientAuth: tls.VerifyClientCertIfGiven, MinVersion: tls.VersionTLS12}}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	defer func() { _ = srv.Close() }()
	g.Expect(cluster.RegisterAggregatedAPI(ctx, api)).To(Succeed())

	alice, err := cluster.AddUser("alice", "system:masters")
	g.Expect(err).NotTo(HaveOccurred())
	hc, err := rest.HTTPClientFor(alice)
	g.Expect(err).NotTo(HaveOccurred())
	g.Eventually(func(g Gomega) {
		resp, err := hc.Get(strings.TrimSuffix(alice.Host, "/") + "/apis/test.hub.minimax.io/v1/things")
		g.Expect(err).NotTo(HaveOccurred())
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		g.Expect(resp.StatusCode).To(Equal(http.StatusOK), string(body))
	}, 20*time.Second, 200*time.Millisecond).Should(Succeed(), func() string {
		apiService := &unstructured.Unstructured{}
		apiService.SetAPIVersion("apiregistration.k8s.io/v1")
		apiService.SetKind("APIService")
		err := cl.Get(ctx, client.ObjectKey{Name: "v1.test.hub.minimax.io"}, apiService)
		return fmt.Sprintf("APIService: %v %v", err, apiService.Object["status"])
	})
	g.Expect(<-seen).To(Equal("alice"))
}

package devcluster

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// frontProxyClientName is the common name of the client certificate that
// the aggregator presents to aggregated API servers; they accept only it
// (--requestheader-allowed-names).
const frontProxyClientName = "front-proxy-client"

// authority is a certificate authority of one run, held in memory.
type authority struct {
	cert    *x509.Certificate
	certPEM []byte
	key     crypto.Signer
}

func newAuthority(name string) (*authority, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	template := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, key.Public(), key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &authority{cert: cert, certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), key: key}, nil
}

// issue signs a certificate for name: a client certificate when dnsNames
// is empty, else a serving certificate for dnsNames and loopback. It
// returns the certificate and its key, PEM-encoded.
func (a *authority) issue(name string, dnsNames ...string) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, nil, err
	}
	template := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if len(dnsNames) > 0 {
		template.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		template.DNSNames = append(dnsNames, "localhost")
		template.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	}
	der, err := x509.CreateCertificate(rand.Reader, template, a.cert, key.Public(), a.key)
	if err != nil {
		return nil, nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), nil
}

// configureAggregation turns on kube-apiserver's aggregation layer, as a
// cluster installer does: a front-proxy CA that aggregated API servers
// trust for the X-Remote-User and X-Remote-Group headers, and the client
// certificate the aggregator proxies with. The CA reaches aggregated
// servers through the configmap kube-system/extension-apiserver-authentication,
// which kube-apiserver writes.
func (c *Cluster) configureAggregation(apiServer *envtest.APIServer) error {
	frontProxy, err := newAuthority("front-proxy-ca")
	if err != nil {
		return err
	}
	clientCert, clientKey, err := frontProxy.issue(frontProxyClientName)
	if err != nil {
		return err
	}
	dir := filepath.Join(c.runDir, "front-proxy")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	files := map[string][]byte{"ca.crt": frontProxy.certPEM, "client.crt": clientCert, "client.key": clientKey}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			return err
		}
	}
	args := apiServer.Configure()
	args.Set("requestheader-client-ca-file", filepath.Join(dir, "ca.crt"))
	args.Set("requestheader-allowed-names", frontProxyClientName)
	args.Set("requestheader-username-headers", "X-Remote-User")
	args.Set("requestheader-group-headers", "X-Remote-Group")
	args.Set("requestheader-extra-headers-prefix", "X-Remote-Extra-")
	args.Set("proxy-client-cert-file", filepath.Join(dir, "client.crt"))
	args.Set("proxy-client-key-file", filepath.Join(dir, "client.key"))
	if c.servingCA, err = newAuthority("aggregated-api-serving-ca"); err != nil {
		return err
	}
	return nil
}

// AggregatedAPI is an aggregated API server on loopback to register with
// the local kube-apiserver.
type AggregatedAPI struct {
	// Group and Version are the API group version it serves.
	Group, Version string
	// Namespace and Service name the Service that the APIService points
	// at; the serving certificate names <Service>.<Namespace>.svc.
	Namespace, Service string
	// Port is the loopback port the server listens on.
	Port int
	// GroupPriorityMinimum and VersionPriority order it in discovery;
	// zero means 1000 and 15.
	GroupPriorityMinimum, VersionPriority int32
}

// ServingCertificate is the certificate an aggregated API server serves,
// signed by the CA of the APIService's caBundle.
type ServingCertificate struct {
	CertPEM, KeyPEM []byte
	// CAPEM is the CA that signed it, for clients that call the server
	// directly rather than through the aggregator.
	CAPEM []byte
}

// AggregatedAPICertificate issues the certificate an aggregated API server
// serves: it names <Service>.<Namespace>.svc, as the aggregator expects,
// and loopback, and is signed by the CA that RegisterAggregatedAPI puts in
// the APIService's caBundle.
func (c *Cluster) AggregatedAPICertificate(api AggregatedAPI) (*ServingCertificate, error) {
	if c.servingCA == nil {
		return nil, fmt.Errorf("the control plane was started without the aggregation layer")
	}
	host := api.Service + "." + api.Namespace + ".svc"
	certPEM, keyPEM, err := c.servingCA.issue(host, host, host+".cluster.local")
	if err != nil {
		return nil, err
	}
	return &ServingCertificate{CertPEM: certPEM, KeyPEM: keyPEM, CAPEM: c.servingCA.certPEM}, nil
}

// RegisterAggregatedAPI makes kube-apiserver's aggregator route api to a
// server on loopback, the way it routes to one in a cluster: an APIService
// whose Service is of type ExternalName, with externalName localhost and
// the server's port (Endpoints may not hold loopback addresses; an
// ExternalName may). The aggregator verifies the server's certificate
// (AggregatedAPICertificate) against the APIService's caBundle, never
// skipping TLS verification. Register once the server listens: the
// aggregator reads its OpenAPI at once, and retries only after a while.
// Registering again (a restart of `hub dev` on its state) replaces both
// objects.
func (c *Cluster) RegisterAggregatedAPI(ctx context.Context, api AggregatedAPI) error {
	if c.servingCA == nil {
		return fmt.Errorf("the control plane was started without the aggregation layer")
	}
	cl, err := client.New(c.Config, client.Options{})
	if err != nil {
		return err
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: api.Namespace}}
	if err := cl.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating namespace %s: %w", api.Namespace, err)
	}
	owner := client.FieldOwner("hub-devcluster")
	svc := corev1ac.Service(api.Service, api.Namespace).WithSpec(corev1ac.ServiceSpec().
		WithType(corev1.ServiceTypeExternalName).WithExternalName("localhost").
		WithPorts(corev1ac.ServicePort().WithName("https").WithPort(int32(api.Port))))
	if err := cl.Apply(ctx, svc, owner, client.ForceOwnership); err != nil {
		return fmt.Errorf("applying Service %s/%s: %w", api.Namespace, api.Service, err)
	}
	apiService := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apiregistration.k8s.io/v1",
		"kind":       "APIService",
		"metadata":   map[string]any{"name": api.Version + "." + api.Group},
		"spec": map[string]any{
			"group":                api.Group,
			"version":              api.Version,
			"service":              map[string]any{"namespace": api.Namespace, "name": api.Service, "port": int64(api.Port)},
			"caBundle":             base64.StdEncoding.EncodeToString(c.servingCA.certPEM),
			"groupPriorityMinimum": int64(orDefault(api.GroupPriorityMinimum, 1000)),
			"versionPriority":      int64(orDefault(api.VersionPriority, 15)),
		},
	}}
	if err := cl.Apply(ctx, client.ApplyConfigurationFromUnstructured(apiService), owner, client.ForceOwnership); err != nil {
		return fmt.Errorf("applying APIService %s: %w", apiService.GetName(), err)
	}
	return nil
}

func orDefault(v, def int32) int32 {
	if v == 0 {
		return def
	}
	return v
}

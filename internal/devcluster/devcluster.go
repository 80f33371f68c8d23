// Package devcluster runs a local Kubernetes control plane for `hub dev` and
// for the tests: etcd, kube-apiserver and the two kube-controller-manager
// controllers the hub relies on (namespace deletion and garbage collection of
// owned objects), with the hub's CRDs and admission webhooks installed and
// the aggregation layer on, so aggregated API servers on loopback can be
// registered (RegisterAggregatedAPI) and reached through the real aggregator.
//
// The binaries are the ones hack/controlplane builds into bin/ from the Go
// module proxy. Processes are started through controller-runtime's envtest,
// the well-kept way to run a test control plane; this package adds the
// controller-manager, persistent state for `hub dev`, a lock against two
// instances sharing that state, and kubeconfig files for people.
package devcluster

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
)

// Options configure a local control plane.
type Options struct {
	// BinDir holds kube-apiserver, etcd and kube-controller-manager. Empty
	// means FindBinDir.
	BinDir string

	// StateDir, when set, keeps the cluster's data across restarts: etcd's data
	// in StateDir/etcd, and this run's certificates in StateDir/run. Only one
	// process may use a StateDir at a time. Empty means a temporary directory
	// that Stop removes.
	StateDir string

	// Scheme knows the types of the CRDs; it is used to install them.
	Scheme *runtime.Scheme

	// CRDs are installed once the API server is up.
	CRDs []*apiextensionsv1.CustomResourceDefinition

	// ValidatingWebhooks are installed pointing at a webhook server on
	// loopback, with a CA generated for this run; WebhookServerOptions tells
	// the server where to listen and which certificate to serve.
	ValidatingWebhooks []*admissionv1.ValidatingWebhookConfiguration

	// AuthenticationConfig, when set, is the API server's structured
	// authentication configuration (--authentication-config): tests use it
	// to sign people in through an OIDC issuer, as a real cluster does.
	AuthenticationConfig []byte

	// Output receives the control plane's logs. Nil discards them.
	Output io.Writer
}

// Cluster is a running local control plane.
type Cluster struct {
	// Config reaches the API server as a cluster administrator.
	Config *rest.Config

	env               *envtest.Environment
	controllerManager *process
	lock              *stateLock
	runDir            string
	removeStateDir    bool
	// servingCA signs the serving certificates of aggregated API servers
	// (RegisterAggregatedAPI).
	servingCA *authority
}

// Start starts etcd, kube-apiserver and the controller-manager, installs the
// CRDs and webhook configurations, and returns once the API server serves them.
func Start(opts Options) (_ *Cluster, err error) {
	binDir := opts.BinDir
	if binDir == "" {
		if binDir, err = FindBinDir(); err != nil {
			return nil, err
		}
	} else if err := checkBinaries(binDir); err != nil {
		return nil, err
	}
	c := &Cluster{}
	defer func() {
		if err != nil {
			_ = c.Stop()
		}
	}()
	stateDir, err := c.prepareStateDir(opts.StateDir)
	if err != nil {
		return nil, err
	}

	out := opts.Output
	if out == nil {
		out = io.Discard
	}
	c.env = &envtest.Environment{
		Scheme:                   opts.Scheme,
		BinaryAssetsDirectory:    binDir,
		CRDs:                     opts.CRDs,
		ErrorIfCRDPathMissing:    true,
		ControlPlaneStartTimeout: time.Minute,
		ControlPlaneStopTimeout:  30 * time.Second,
		WebhookInstallOptions: envtest.WebhookInstallOptions{
			ValidatingWebhooks: opts.ValidatingWebhooks,
		},
	}
	c.env.ControlPlane.Etcd = &envtest.Etcd{DataDir: filepath.Join(stateDir, "etcd"), Out: out, Err: out}
	apiServer := c.env.ControlPlane.GetAPIServer()
	apiServer.CertDir = filepath.Join(c.runDir, "apiserver")
	apiServer.Out, apiServer.Err = out, out
	if err := c.configureAggregation(apiServer); err != nil {
		return nil, fmt.Errorf("configuring the aggregation layer: %w", err)
	}
	if opts.AuthenticationConfig != nil {
		path := filepath.Join(c.runDir, "authentication-config.yaml")
		if err := os.WriteFile(path, opts.AuthenticationConfig, 0o600); err != nil {
			return nil, err
		}
		apiServer.Configure().Set("authentication-config", path)
	}

	if c.Config, err = c.env.Start(); err != nil {
		return nil, fmt.Errorf("starting etcd and kube-apiserver from %s: %w", binDir, err)
	}
	if err := c.startControllerManager(binDir, out); err != nil {
		return nil, err
	}
	return c, nil
}

// prepareStateDir creates and locks the state directory (a temporary one when
// dir is empty), stops what an earlier killed run left running there, and
// clears the files of the previous run. It returns the absolute path.
func (c *Cluster) prepareStateDir(dir string) (string, error) {
	var err error
	if dir == "" {
		if dir, err = os.MkdirTemp("", "hub-devcluster-"); err != nil {
			return "", fmt.Errorf("creating a directory for the control plane: %w", err)
		}
		c.removeStateDir = true
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("creating state directory: %w", err)
	}
	if c.lock, err = acquireStateLock(dir); err != nil {
		return "", err
	}
	// Processes left over from a run that was killed hold etcd's data
	// directory; stop them before starting new ones.
	if err := stopLeftoverProcesses(dir); err != nil {
		return "", err
	}
	c.runDir = filepath.Join(dir, "run")
	if err := os.RemoveAll(c.runDir); err != nil {
		return "", fmt.Errorf("clearing %s: %w", c.runDir, err)
	}
	for _, d := range []string{filepath.Join(c.runDir, "apiserver"), filepath.Join(dir, "etcd")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return "", err
		}
	}
	return dir, nil
}

// startControllerManager runs the namespace and garbage-collector controllers
// of kube-controller-manager, so that deleting a namespace or an owner behaves
// as in a real cluster.
func (c *Cluster) startControllerManager(binDir string, out io.Writer) error {
	kubeconfig := filepath.Join(c.runDir, "controller-manager.kubeconfig")
	if err := c.WriteKubeconfig(kubeconfig, "system:kube-controller-manager", "system:masters"); err != nil {
		return err
	}
	p, err := startProcess(filepath.Join(binDir, "kube-controller-manager"), []string{
		"--kubeconfig=" + kubeconfig,
		"--controllers=namespace-controller,garbage-collector-controller",
		"--leader-elect=false",
		"--secure-port=0",
		"--concurrent-namespace-syncs=5",
	}, out)
	if err != nil {
		return fmt.Errorf("starting kube-controller-manager: %w", err)
	}
	c.controllerManager = p
	return nil
}

// WebhookServerOptions tells a webhook server where the installed webhook
// configurations expect it, and the certificate they trust.
func (c *Cluster) WebhookServerOptions() webhook.Options {
	o := c.env.WebhookInstallOptions
	return webhook.Options{Host: o.LocalServingHost, Port: o.LocalServingPort, CertDir: o.LocalServingCertDir}
}

// AddUser returns a client configuration for a user that the API server
// authenticates with a client certificate, with the given groups.
func (c *Cluster) AddUser(name string, groups ...string) (*rest.Config, error) {
	user, err := c.env.AddUser(envtest.User{Name: name, Groups: groups}, &rest.Config{QPS: 1000, Burst: 2000})
	if err != nil {
		return nil, fmt.Errorf("adding user %q: %w", name, err)
	}
	return user.Config(), nil
}

// WriteKubeconfig writes a kubeconfig file for a new user with the given groups.
func (c *Cluster) WriteKubeconfig(path, user string, groups ...string) error {
	cfg, err := c.AddUser(user, groups...)
	if err != nil {
		return err
	}
	const name = "hub-dev"
	kubeconfig := clientcmdapi.NewConfig()
	kubeconfig.Clusters[name] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData}
	kubeconfig.AuthInfos[name] = &clientcmdapi.AuthInfo{ClientCertificateData: cfg.CertData, ClientKeyData: cfg.KeyData}
	kubeconfig.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: name}
	kubeconfig.CurrentContext = name
	if err := clientcmd.WriteToFile(*kubeconfig, path); err != nil {
		return fmt.Errorf("writing kubeconfig %s: %w", path, err)
	}
	return nil
}

// Stop stops every process of the control plane and releases the state
// directory. It is safe to call on a partly started cluster.
func (c *Cluster) Stop() error {
	var errs []error
	if c.controllerManager != nil {
		errs = append(errs, c.controllerManager.stop(10*time.Second))
	}
	if c.env != nil {
		errs = append(errs, c.env.Stop())
	}
	if c.lock != nil {
		errs = append(errs, c.lock.release())
		if c.removeStateDir {
			errs = append(errs, os.RemoveAll(c.lock.dir))
		}
	}
	return errors.Join(errs...)
}

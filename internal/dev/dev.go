// Package dev runs the whole hub on a laptop for `hub dev`: a local control
// plane with the hub's CRDs and webhooks, the manager, and on first start the
// sample resources, with state kept in one directory across restarts.
package dev

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/wait"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mgmtv1alpha1 "github.com/minimax/platform-hub/api/management/v1alpha1"
	"github.com/minimax/platform-hub/config"
	"github.com/minimax/platform-hub/internal/apiserver"
	"github.com/minimax/platform-hub/internal/demomodel"
	"github.com/minimax/platform-hub/internal/devcluster"
	"github.com/minimax/platform-hub/internal/egress"
	"github.com/minimax/platform-hub/internal/gateway"
	"github.com/minimax/platform-hub/internal/operator"
	"github.com/minimax/platform-hub/internal/scheme"
	"github.com/minimax/platform-hub/internal/server"
)

// Options configure `hub dev`.
type Options struct {
	// StateDir keeps etcd's data, the kubeconfig and logs across restarts.
	StateDir string
	// BinDir holds the control-plane binaries; empty means found automatically.
	BinDir string
	// MetricsAddr serves the manager's metrics; empty picks a free loopback
	// port. `hub dev` gives every address a fixed default (see Endpoints).
	MetricsAddr string
	// GatewayAddr is where the gateway listens.
	GatewayAddr string
	// ServerAddr is where the usage server listens; empty picks a free
	// loopback port.
	ServerAddr string
	// ServerMetricsAddr and GatewayMetricsAddr serve those roles' metrics;
	// empty picks a free loopback port.
	ServerMetricsAddr, GatewayMetricsAddr string
	// APIServerAddr is where the management API listens (kube-apiserver's
	// aggregator proxies to it); empty picks a free loopback port.
	APIServerAddr string
	// DashboardAddr is where the dashboard listens (plain HTTP on
	// loopback); empty picks a free loopback port.
	DashboardAddr string
	// OwnerEmail is the email of the first Owner, whose account-setup link
	// `hub dev` prints until it is used; default owner@example.com.
	OwnerEmail string
	// Out receives the instructions printed for the user.
	Out io.Writer
	// SkipSamples starts a new state directory without the samples, for
	// users who apply their own Organization first. Only the first start of
	// a state directory applies samples either way.
	SkipSamples bool

	// SkipControllerNameValidation lets a process run the hub more than once
	// (tests restart it in-process).
	SkipControllerNameValidation bool
}

// samplesAppliedFile marks a state directory whose samples were applied, so a
// restart does not bring back samples the user deleted.
const samplesAppliedFile = "samples-applied"

// Run runs the hub until ctx is cancelled, then stops everything it started.
func Run(ctx context.Context, opts Options) (retErr error) {
	if err := os.MkdirAll(opts.StateDir, 0o700); err != nil {
		return fmt.Errorf("creating state directory: %w", err)
	}
	stateDir, err := filepath.Abs(opts.StateDir)
	if err != nil {
		return err
	}
	cluster, closeLog, err := startControlPlane(stateDir, opts)
	if err != nil {
		return err
	}
	defer closeLog()
	defer func() {
		fmt.Fprintln(opts.Out, "Stopping the control plane")
		retErr = errors.Join(retErr, cluster.Stop())
	}()

	kubeconfig := filepath.Join(stateDir, "kubeconfig")
	if err := cluster.WriteKubeconfig(kubeconfig, "hub-admin", "system:masters"); err != nil {
		return err
	}

	// Every address is chosen now: the manager sends the usage server the
	// audit log (entries wait in a spool until it is up).
	if err := opts.pickFreeAddrs(); err != nil {
		return err
	}
	metricsAddr, serverAddr := opts.MetricsAddr, opts.ServerAddr
	auditToken, err := managerToken(ctx, cluster)
	if err != nil {
		return err
	}
	mgr, err := operator.NewManager(cluster.Config, operator.Options{
		MetricsAddr: metricsAddr,
		ProbeAddr:   "0",
		Webhook:     cluster.WebhookServerOptions(),
		Egress:      devEgress(),
		Audit: operator.AuditOptions{ServerURL: "http://" + serverAddr, Token: auditToken,
			SpoolDir: filepath.Join(stateDir, "audit-spool")},

		SkipControllerNameValidation: opts.SkipControllerNameValidation,
	})
	if err != nil {
		return err
	}

	// Every role runs until ctx ends; one that stops early stops them all.
	rolesCtx, cancelRoles := context.WithCancel(ctx)
	var wg sync.WaitGroup
	failed := make(chan error, 4)
	start := func(name string, run func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := run(rolesCtx)
			if rolesCtx.Err() == nil {
				failed <- fmt.Errorf("the %s stopped unexpectedly: %w", name, err)
			}
		}()
	}
	defer func() {
		cancelRoles()
		wg.Wait()
	}()
	start("manager", mgr.Start)
	if err := applySamplesOnce(ctx, mgr, stateDir, !opts.SkipSamples); err != nil {
		return err
	}

	if _, err := startUsagePath(rolesCtx, start, cluster, stateDir, serverAddr, opts); err != nil {
		return err
	}
	if err := startManagementAPI(rolesCtx, start, cluster, stateDir, opts); err != nil {
		return err
	}
	ownerLink, err := firstOwnerLink(ctx, mgr.GetClient(), mgr.GetAPIReader(), opts)
	if err != nil {
		return err
	}
	printNextSteps(opts.Out, opts.StateDir, kubeconfig, opts, ownerLink)

	select {
	case <-ctx.Done():
		return nil
	case err := <-failed:
		return err
	}
}

// pickFreeAddrs gives every address left empty a free loopback port.
// The ports are held until all are picked, so that no two addresses get
// the same one (the kernel may hand out a port just closed again).
func (opts *Options) pickFreeAddrs() error {
	var held []net.Listener
	defer func() {
		for _, l := range held {
			_ = l.Close()
		}
	}()
	for _, addr := range []*string{&opts.MetricsAddr, &opts.ServerAddr, &opts.ServerMetricsAddr, &opts.GatewayMetricsAddr, &opts.APIServerAddr,
		&opts.DashboardAddr} {
		if *addr == "" {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return fmt.Errorf("finding a free port: %w", err)
			}
			held = append(held, l)
			*addr = l.Addr().String()
		}
	}
	return nil
}

// startControlPlane starts etcd, kube-apiserver and kube-controller-manager
// with their logs in the state directory, and the hub's CRDs and webhooks.
func startControlPlane(stateDir string, opts Options) (*devcluster.Cluster, func(), error) {
	logPath := filepath.Join(stateDir, "controlplane.log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("opening control-plane log: %w", err)
	}
	closeLog := func() { _ = logFile.Close() }
	crds, err := config.CRDs()
	if err != nil {
		closeLog()
		return nil, nil, err
	}
	hooks, err := config.ValidatingWebhooks()
	if err != nil {
		closeLog()
		return nil, nil, err
	}
	fmt.Fprintf(opts.Out, "Starting etcd, kube-apiserver and kube-controller-manager (logs in %s)\n", logPath)
	cluster, err := devcluster.Start(devcluster.Options{
		BinDir:             opts.BinDir,
		StateDir:           stateDir,
		Scheme:             scheme.New(),
		CRDs:               crds,
		ValidatingWebhooks: hooks,
		Output:             logFile,
	})
	if err != nil {
		closeLog()
		return nil, nil, err
	}
	return cluster, closeLog, nil
}

// startUsagePath starts the demo model, the usage server (SQLite in the
// state directory) and the gateway in front of the demo model, and returns
// the gateway's address.
func startUsagePath(ctx context.Context, start func(string, func(context.Context) error), cluster *devcluster.Cluster,
	stateDir, serverAddr string, opts Options) (string, error) {
	model, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	modelServer := &http.Server{Handler: demomodel.Handler(), ReadHeaderTimeout: 10 * time.Second}
	start("demo model", func(ctx context.Context) error {
		go func() {
			<-ctx.Done()
			_ = modelServer.Close()
		}()
		return modelServer.Serve(model)
	})

	sealingKey, err := dashboardSealingKey(stateDir)
	if err != nil {
		return "", err
	}
	serverMgr, store, err := server.NewManager(ctx, cluster.Config, server.Options{
		StoreURL: "sqlite:" + filepath.Join(stateDir, "usage.db"), ListenAddr: serverAddr, PublicURL: "http://" + opts.DashboardAddr,
		DashboardAddr: opts.DashboardAddr, DashboardSealingKey: sealingKey,
		MetricsAddr: opts.ServerMetricsAddr, ProbeAddr: "0", EventRetention: 90 * 24 * time.Hour, RollupRetention: 400 * 24 * time.Hour,
		Egress:                       devEgress(),
		SkipControllerNameValidation: opts.SkipControllerNameValidation,
	})
	if err != nil {
		return "", err
	}
	start("usage server", func(ctx context.Context) error {
		defer func() { _ = store.Close() }()
		return serverMgr.Start(ctx)
	})

	token, err := gatewayToken(ctx, cluster)
	if err != nil {
		return "", err
	}
	gatewayMgr, _, err := gateway.NewManager(ctx, cluster.Config, gateway.Options{
		ListenAddr: opts.GatewayAddr, Upstream: "http://" + model.Addr().String(), ServerURL: "http://" + serverAddr,
		Token: token, SpoolDir: filepath.Join(stateDir, "spool"), MetricsAddr: opts.GatewayMetricsAddr, ProbeAddr: "0",
	})
	if err != nil {
		return "", err
	}
	start("gateway", gatewayMgr.Start)
	return opts.GatewayAddr, nil
}

// startManagementAPI runs the management API on loopback and registers it
// with the control plane's aggregator, as config/apiserver does in a
// cluster. Like the other roles of `hub dev`, it reaches kube-apiserver as
// a cluster administrator; it asks the usage server for usage as its
// ServiceAccount.
func startManagementAPI(ctx context.Context, start func(string, func(context.Context) error), cluster *devcluster.Cluster,
	stateDir string, opts Options) error {
	_, portText, err := net.SplitHostPort(opts.APIServerAddr)
	if err != nil {
		return fmt.Errorf("--apiserver-address: %w", err)
	}
	port, err := strconv.Atoi(portText)
	if err != nil {
		return fmt.Errorf("--apiserver-address: the port must be a number, not %q", portText)
	}
	api := devcluster.AggregatedAPI{Group: mgmtv1alpha1.GroupName, Version: mgmtv1alpha1.SchemeGroupVersion.Version,
		Namespace: hubNamespace, Service: "hub-apiserver", Port: port}
	serving, err := cluster.AggregatedAPICertificate(api)
	if err != nil {
		return err
	}
	dir := filepath.Join(stateDir, "run", "hub-apiserver")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	files := map[string][]byte{"tls.crt": serving.CertPEM, "tls.key": serving.KeyPEM}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			return err
		}
	}
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := cluster.WriteKubeconfig(kubeconfig, "hub-apiserver", "system:masters"); err != nil {
		return err
	}
	token, err := apiserverToken(ctx, cluster)
	if err != nil {
		return err
	}
	srv, err := apiserver.New(apiserver.Options{ListenAddr: opts.APIServerAddr, CertFile: filepath.Join(dir, "tls.crt"),
		KeyFile: filepath.Join(dir, "tls.key"), Kubeconfig: kubeconfig,
		Usage: &apiserver.UsageClient{URL: "http://" + opts.ServerAddr, HTTP: &http.Client{Timeout: time.Minute}, Token: token}})
	if err != nil {
		return err
	}
	start("management API", srv.Run)
	// Registered once it listens: the aggregator reads its OpenAPI at once.
	err = wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		conn, dialErr := net.Dial("tcp", opts.APIServerAddr)
		if dialErr == nil {
			_ = conn.Close()
		}
		return dialErr == nil, nil
	})
	if err != nil {
		return fmt.Errorf("the management API did not come up on %s: %w", opts.APIServerAddr, err)
	}
	return cluster.RegisterAggregatedAPI(ctx, api)
}

// applySamplesOnce creates the sample resources on the first start of a state
// directory, unless apply is false. It retries while the webhook server comes
// up.
func applySamplesOnce(ctx context.Context, mgr ctrl.Manager, stateDir string, apply bool) error {
	marker := filepath.Join(stateDir, samplesAppliedFile)
	if _, err := os.Stat(marker); err == nil {
		return nil
	}
	if !apply {
		return os.WriteFile(marker, []byte("skipped "+time.Now().UTC().Format(time.RFC3339)+"\n"), 0o600)
	}
	samples, err := config.Samples()
	if err != nil {
		return err
	}
	c := mgr.GetClient()
	for _, obj := range samples {
		if err := recordAsApplied(obj); err != nil {
			return err
		}
		// Retry while the webhook server comes up, the API server starts to
		// serve new CRDs, and (for keys) the project's namespace gets ready.
		var lastErr error
		err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
			lastErr = c.Create(ctx, obj.DeepCopy(), client.FieldOwner("hub-dev"))
			return lastErr == nil || apierrors.IsAlreadyExists(lastErr), nil
		})
		if err != nil {
			return fmt.Errorf("applying sample %s %s: %w", obj.GetKind(), obj.GetName(), errors.Join(err, lastErr))
		}
	}
	return os.WriteFile(marker, []byte(time.Now().UTC().Format(time.RFC3339)+"\n"), 0o600)
}

// recordAsApplied annotates a sample with its own configuration, as
// `kubectl apply` (or `kubectl create --save-config`) does. A user's later
// `kubectl apply` of the same object then neither warns about a missing
// annotation nor keeps the sample's fields that the user's file leaves out:
// kubectl's three-way merge removes them.
func recordAsApplied(obj *unstructured.Unstructured) error {
	applied, err := json.Marshal(obj.Object)
	if err != nil {
		return fmt.Errorf("encoding sample %s %s: %w", obj.GetKind(), obj.GetName(), err)
	}
	annotations := obj.GetAnnotations()
	if annotations == nil {
		annotations = map[string]string{}
	}
	annotations[corev1.LastAppliedConfigAnnotation] = string(applied) + "\n"
	obj.SetAnnotations(annotations)
	return nil
}

func printNextSteps(out io.Writer, stateDir, kubeconfig string, opts Options, ownerLink string) {
	rel := kubeconfig
	if r, err := filepath.Rel(mustGetwd(), kubeconfig); err == nil && !filepath.IsAbs(r) && len(r) < len(kubeconfig) {
		rel = r
	}
	fmt.Fprintf(out, `
Platform Hub is running.

  dashboard                        http://%[10]s
%[11]s
  gateway (OpenAI-compatible API)  http://%[5]s/v1
  usage server (API, invitations)  http://%[6]s
  management API                   https://%[9]s, through kube-apiserver: kubectl explain usagereports
  metrics: manager                 http://%[3]s/metrics
           usage server            http://%[7]s/metrics
           gateway                 http://%[8]s/metrics

In another terminal:

  kubectl --kubeconfig %[1]s get organizations
  kubectl --kubeconfig %[1]s get projects
  kubectl --kubeconfig %[1]s get apikeys -n chatbot

Spend tokens with the sample key, through the gateway, on the demo model:

  KEY=$(kubectl --kubeconfig %[1]s -n chatbot get secret support-bot -o jsonpath='{.data.api-key}' | base64 -d)
  curl -s http://%[5]s/v1/chat/completions -H "Authorization: Bearer $KEY" \
    -H 'Content-Type: application/json' \
    -d '{"model":"MiniMax-M2","messages":[{"role":"user","content":"Hello, hub"}]}'

or export KUBECONFIG=%[2]s once.

State is kept in %[4]s across restarts (delete it to start over). Press Ctrl-C to stop.
`, rel, kubeconfig, opts.MetricsAddr, stateDir, opts.GatewayAddr, opts.ServerAddr, opts.ServerMetricsAddr, opts.GatewayMetricsAddr,
		opts.APIServerAddr, opts.DashboardAddr, ownerLink)
}

func mustGetwd() string {
	wd, _ := os.Getwd()
	return wd
}

// devEgress lets NotificationChannel webhooks reach receivers on the
// laptop, over plain http on loopback, so alerts can be tried locally.
func devEgress() *egress.Policy {
	return &egress.Policy{AllowHTTP: true, Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}}
}

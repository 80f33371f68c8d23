package controllers_test

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/minimax/platform-hub/config"
	"github.com/minimax/platform-hub/controllers"
	"github.com/minimax/platform-hub/internal/devcluster"
	"github.com/minimax/platform-hub/internal/operator"
	"github.com/minimax/platform-hub/internal/scheme"
	"github.com/minimax/platform-hub/internal/testlog"
)

// The suite runs one real control plane (etcd, kube-apiserver and the
// controller-manager's namespace and garbage-collector controllers) and one
// hub manager for every test in the package. Fault tests stop that manager
// and run others in its place. Set HUB_TEST_LOG=1 to see the manager's logs.
var (
	k8sClient client.Client
	restCfg   *rest.Config
	testClock = clocktesting.NewFakeClock(time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC))

	cluster *devcluster.Cluster
	// issuer is the identity provider the suite's API server trusts.
	issuer *oidcIssuer
	// managerLogs holds everything every manager logged, at full verbosity,
	// for the key-material leak check.
	managerLogs = &testlog.Buffer{}
	// metricsAddr is where the suite's manager serves Prometheus metrics.
	metricsAddr string
	// stopSuiteManager stops the suite's manager; startSuiteManager starts a
	// new one.
	stopSuiteManager func()
	// suiteManager is the manager running now.
	suiteManager ctrl.Manager
)

func TestMain(m *testing.M) {
	code, err := runSuite(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(code)
}

func runSuite(m *testing.M) (int, error) {
	flag.Parse()
	// Benchmarks measure the hub, not the leak check's recorders, and log
	// little; tests record everything at the most verbose level.
	benchmarking := flag.Lookup("test.bench").Value.String() != ""
	var logOut io.Writer = managerLogs
	level := zapcore.Level(-10)
	if benchmarking {
		logOut, level = io.Discard, zapcore.InfoLevel
	}
	if os.Getenv("HUB_TEST_LOG") != "" {
		logOut = io.MultiWriter(logOut, os.Stderr)
	}
	ctrl.SetLogger(zap.New(zap.WriteTo(logOut), zap.Level(level)))

	crds, err := config.CRDs()
	if err != nil {
		return 0, err
	}
	hooks, err := config.ValidatingWebhooks()
	if err != nil {
		return 0, err
	}
	esoCRDs, err := externalSecretsCRDs()
	if err != nil {
		return 0, err
	}
	if issuer, err = startOIDCIssuer(); err != nil {
		return 0, err
	}
	defer issuer.server.Close()
	cluster, err = devcluster.Start(devcluster.Options{
		Scheme:               scheme.New(),
		CRDs:                 append(crds, esoCRDs...),
		ValidatingWebhooks:   hooks,
		AuthenticationConfig: issuer.authenticationConfig(),
	})
	if err != nil {
		return 0, err
	}
	defer func() { _ = cluster.Stop() }()
	restCfg = cluster.Config
	if k8sClient, err = client.New(cluster.Config, client.Options{Scheme: scheme.New()}); err != nil {
		return 0, err
	}

	stopHelpers, err := startHelpers(benchmarking)
	if err != nil {
		return 0, err
	}
	if err := startSuiteManager(nil); err != nil {
		stopHelpers()
		return 0, err
	}
	code := m.Run()
	stopSuiteManager()
	stopHelpers()
	if code == 0 && !benchmarking {
		if err := checkNoKeyMaterialLeaked(); err != nil {
			fmt.Fprintln(os.Stderr, "FAIL: key material leaked:", err)
			code = 1
		}
	}
	return code, nil
}

// startHelpers starts what the suite's manager works with: the metrics
// address, the usage server that keeps the audit log, and (for tests) the
// observer of events and status for the leak check.
func startHelpers(benchmarking bool) (stop func(), err error) {
	if metricsAddr, err = freeAddr(); err != nil {
		return nil, err
	}
	stopAuditServer, err := startAuditServer(context.Background())
	if err != nil {
		return nil, err
	}
	stopObserver := func() {}
	if !benchmarking {
		if stopObserver, err = startObserver(); err != nil {
			stopAuditServer()
			return nil, err
		}
	}
	return func() { stopObserver(); stopAuditServer() }, nil
}

// suiteServerAccess is the usage server the suite's manager grants Secrets
// in project namespaces to (TestServerReadsSecretsOnlyInProjects).
var suiteServerAccess = controllers.SecretAccess{
	ServiceAccount: types.NamespacedName{Namespace: "hub-system", Name: "hub-server"}, ClusterRole: "hub-server-secret-reader"}

// suiteManagerAccess is the ServiceAccount the suite's manager binds the key
// Secrets' role to in project namespaces, as an installed manager binds its
// own (TestManagerSecretsOnlyInProjectNamespaces).
var suiteManagerAccess = controllers.SecretAccess{
	ServiceAccount: types.NamespacedName{Namespace: "hub-system", Name: "hub-manager"}, ClusterRole: "hub-manager-secrets"}

// startSuiteManager starts a hub manager against the suite's control plane.
// faults, when set, intercepts its writes.
func startSuiteManager(faults *faultInjector) error {
	opts := operator.Options{
		MetricsAddr:                  metricsAddr,
		ProbeAddr:                    "0",
		Webhook:                      cluster.WebhookServerOptions(),
		Clock:                        testClock,
		SkipControllerNameValidation: true,
		Audit:                        auditOpts,
		ServerAccess:                 suiteServerAccess,
		ManagerAccess:                suiteManagerAccess,
	}
	if faults != nil {
		opts.NewClient = faults.newClient
		opts.MetricsAddr = "0"
	}
	mgr, err := operator.NewManager(cluster.Config, opts)
	if err != nil {
		return err
	}
	suiteManager = mgr
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	stopSuiteManager = func() {
		cancel()
		if err := <-done; err != nil {
			fmt.Fprintln(os.Stderr, "manager:", err)
		}
	}
	if faults != nil {
		faults.crash = cancel
	}
	return waitForWebhookServer(mgr)
}

func waitForWebhookServer(mgr ctrl.Manager) error {
	check := mgr.GetWebhookServer().StartedChecker()
	deadline := time.Now().Add(30 * time.Second)
	for check(nil) != nil {
		if time.Now().After(deadline) {
			return fmt.Errorf("webhook server did not start: %w", check(nil))
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer func() { _ = l.Close() }()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(l.Addr().(*net.TCPAddr).Port)), nil
}

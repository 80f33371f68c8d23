package controllers_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/minimax/platform-hub/config"
	"github.com/minimax/platform-hub/internal/devcluster"
	"github.com/minimax/platform-hub/internal/operator"
)

// The suite runs one real control plane (etcd, kube-apiserver and the
// controller-manager's namespace and garbage-collector controllers) and one
// hub manager for every test in the package. Set HUB_TEST_LOG=1 to see the
// manager's logs.
var (
	k8sClient client.Client
	restCfg   *rest.Config
	testClock = clocktesting.NewFakeClock(time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC))
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
	logOut := io.Discard
	if os.Getenv("HUB_TEST_LOG") != "" {
		logOut = os.Stderr
	}
	ctrl.SetLogger(zap.New(zap.WriteTo(logOut), zap.UseDevMode(true)))

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
	cluster, err := devcluster.Start(devcluster.Options{
		Scheme:             operator.Scheme(),
		CRDs:               append(crds, esoCRDs...),
		ValidatingWebhooks: hooks,
	})
	if err != nil {
		return 0, err
	}
	defer func() { _ = cluster.Stop() }()
	restCfg = cluster.Config

	mgr, err := operator.NewManager(cluster.Config, operator.Options{
		MetricsAddr: "0",
		ProbeAddr:   "0",
		Webhook:     cluster.WebhookServerOptions(),
		Clock:       testClock,
	})
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			fmt.Fprintln(os.Stderr, "manager:", err)
		}
	}()
	if err := waitForWebhookServer(mgr); err != nil {
		return 0, err
	}

	if k8sClient, err = client.New(cluster.Config, client.Options{Scheme: operator.Scheme()}); err != nil {
		return 0, err
	}
	return m.Run(), nil
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

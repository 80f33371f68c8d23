// Package dev runs the whole hub on a laptop for `hub dev`: a local control
// plane with the hub's CRDs and webhooks, the manager, and on first start the
// sample resources, with state kept in one directory across restarts.
package dev

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/wait"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/minimax/platform-hub/config"
	"github.com/minimax/platform-hub/internal/devcluster"
	"github.com/minimax/platform-hub/internal/operator"
)

// Options configure `hub dev`.
type Options struct {
	// StateDir keeps etcd's data, the kubeconfig and logs across restarts.
	StateDir string
	// BinDir holds the control-plane binaries; empty means found automatically.
	BinDir string
	// MetricsAddr serves the manager's metrics; empty picks a free loopback port.
	MetricsAddr string
	// Out receives the instructions printed for the user.
	Out io.Writer

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
	logPath := filepath.Join(stateDir, "controlplane.log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("opening control-plane log: %w", err)
	}
	defer func() { _ = logFile.Close() }()

	crds, err := config.CRDs()
	if err != nil {
		return err
	}
	hooks, err := config.ValidatingWebhooks()
	if err != nil {
		return err
	}
	fmt.Fprintf(opts.Out, "Starting etcd, kube-apiserver and kube-controller-manager (logs in %s)\n", logPath)
	cluster, err := devcluster.Start(devcluster.Options{
		BinDir:             opts.BinDir,
		StateDir:           stateDir,
		Scheme:             operator.Scheme(),
		CRDs:               crds,
		ValidatingWebhooks: hooks,
		Output:             logFile,
	})
	if err != nil {
		return err
	}
	defer func() {
		fmt.Fprintln(opts.Out, "Stopping the control plane")
		retErr = errors.Join(retErr, cluster.Stop())
	}()

	kubeconfig := filepath.Join(stateDir, "kubeconfig")
	if err := cluster.WriteKubeconfig(kubeconfig, "hub-admin", "system:masters"); err != nil {
		return err
	}

	metricsAddr := opts.MetricsAddr
	if metricsAddr == "" {
		if metricsAddr, err = freeLoopbackAddr(); err != nil {
			return err
		}
	}
	mgr, err := operator.NewManager(cluster.Config, operator.Options{
		MetricsAddr: metricsAddr,
		ProbeAddr:   "0",
		Webhook:     cluster.WebhookServerOptions(),

		SkipControllerNameValidation: opts.SkipControllerNameValidation,
	})
	if err != nil {
		return err
	}
	mgrCtx, cancelManager := context.WithCancel(ctx)
	var mgrErr error
	mgrStopped := make(chan struct{})
	go func() {
		mgrErr = mgr.Start(mgrCtx)
		close(mgrStopped)
	}()
	defer func() {
		cancelManager()
		<-mgrStopped
		retErr = errors.Join(retErr, mgrErr)
	}()

	if err := applySamplesOnce(ctx, mgr, stateDir); err != nil {
		return err
	}
	printNextSteps(opts.Out, opts.StateDir, kubeconfig, metricsAddr)

	select {
	case <-ctx.Done():
		return nil
	case <-mgrStopped:
		return errors.New("the manager stopped unexpectedly")
	}
}

// applySamplesOnce creates the sample resources on the first start of a state
// directory. It retries while the webhook server comes up.
func applySamplesOnce(ctx context.Context, mgr ctrl.Manager, stateDir string) error {
	marker := filepath.Join(stateDir, samplesAppliedFile)
	if _, err := os.Stat(marker); err == nil {
		return nil
	}
	samples, err := config.Samples()
	if err != nil {
		return err
	}
	c := mgr.GetClient()
	for _, obj := range samples {
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

func printNextSteps(out io.Writer, stateDir, kubeconfig, metricsAddr string) {
	rel := kubeconfig
	if r, err := filepath.Rel(mustGetwd(), kubeconfig); err == nil && !filepath.IsAbs(r) && len(r) < len(kubeconfig) {
		rel = r
	}
	fmt.Fprintf(out, `
Platform Hub is running. In another terminal:

  kubectl --kubeconfig %[1]s get organizations
  kubectl --kubeconfig %[1]s get projects
  kubectl --kubeconfig %[1]s get namespace chatbot

or export KUBECONFIG=%[2]s once. Manager metrics: http://%[3]s/metrics

State is kept in %[4]s across restarts (delete it to start over). Press Ctrl-C to stop.
`, rel, kubeconfig, metricsAddr, stateDir)
}

func mustGetwd() string {
	wd, _ := os.Getwd()
	return wd
}

// freeLoopbackAddr returns a loopback address with a port that was free a
// moment ago.
func freeLoopbackAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("finding a free port: %w", err)
	}
	defer func() { _ = l.Close() }()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(l.Addr().(*net.TCPAddr).Port)), nil
}

package dev

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
	"github.com/minimax/platform-hub/internal/devcluster"
	"github.com/minimax/platform-hub/internal/scheme"
	"github.com/minimax/platform-hub/internal/testlog"
)

// TestDev runs `hub dev` as a user would: the samples come up through the
// kubeconfig it writes, a second run on the same state is refused, stopping
// leaves no process behind, and a restart keeps the state without applying
// the samples again.
func TestDev(t *testing.T) {
	g := NewWithT(t)
	setTestLogger()
	stateDir := t.TempDir()

	hub := startDev(t, stateDir)
	c := clientFromKubeconfig(g, filepath.Join(stateDir, "kubeconfig"))
	ctx := context.Background()

	project := &hubv1.Project{}
	g.Eventually(func(g Gomega) {
		g.Expect(c.Get(ctx, client.ObjectKey{Name: "chatbot"}, project)).To(Succeed())
		g.Expect(project.Status.Phase).To(Equal(hubv1.ProjectActive))
	}, time.Minute, 100*time.Millisecond).Should(Succeed())
	g.Expect(c.Get(ctx, client.ObjectKey{Name: "chatbot"}, &corev1.Namespace{})).To(Succeed())
	g.Expect(c.Get(ctx, client.ObjectKey{Name: hubv1.OrganizationName}, &hubv1.Organization{})).To(Succeed())
	g.Expect(hub.out.String()).To(ContainSubstring("kubectl --kubeconfig"))

	// The sample key works through the gateway, on the demo model.
	secret := &corev1.Secret{}
	g.Eventually(func() error {
		return c.Get(ctx, client.ObjectKey{Namespace: "chatbot", Name: "support-bot"}, secret)
	}, time.Minute).Should(Succeed())
	g.Eventually(func(g Gomega) {
		req, _ := http.NewRequest(http.MethodPost, "http://"+hub.gatewayAddr+"/v1/chat/completions",
			strings.NewReader(`{"model":"MiniMax-M2","messages":[{"role":"user","content":"Hello, hub"}]}`))
		req.Header.Set("Authorization", "Bearer "+string(secret.Data["api-key"]))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		g.Expect(err).NotTo(HaveOccurred())
		defer func() { _ = resp.Body.Close() }()
		body, _ := io.ReadAll(resp.Body)
		g.Expect(resp.StatusCode).To(Equal(http.StatusOK), string(body))
		g.Expect(string(body)).To(ContainSubstring("demo model"))
	}, 30*time.Second).Should(Succeed())

	// A second hub on the same state directory is refused at once.
	err := Run(ctx, Options{StateDir: stateDir, Out: &testlog.Buffer{}})
	g.Expect(errors.Is(err, devcluster.ErrStateDirInUse)).To(BeTrue(), "got %v", err)
	g.Expect(err.Error()).To(ContainSubstring("--state-dir"))

	// Delete the sample project, to see that a restart does not recreate it.
	patch := client.MergeFrom(project.DeepCopy())
	metav1.SetMetaDataAnnotation(&project.ObjectMeta, hubv1.ConfirmDeleteAnnotation, project.Name)
	g.Expect(c.Patch(ctx, project, patch)).To(Succeed())
	g.Expect(c.Delete(ctx, project)).To(Succeed())
	g.Eventually(func() bool {
		return apierrors.IsNotFound(c.Get(ctx, client.ObjectKey{Name: "chatbot"}, &hubv1.Project{}))
	}, time.Minute).Should(BeTrue())

	g.Expect(hub.stop()).To(Succeed())
	if runtime.GOOS == "linux" {
		g.Expect(processesUsing(stateDir)).To(BeEmpty(), "no process may outlive hub dev")
	}

	// Restarted, the hub has its data back and the deleted sample stays deleted.
	hub = startDev(t, stateDir)
	c = clientFromKubeconfig(g, filepath.Join(stateDir, "kubeconfig"))
	g.Expect(c.Get(ctx, client.ObjectKey{Name: hubv1.OrganizationName}, &hubv1.Organization{})).To(Succeed())
	g.Consistently(func() bool {
		return apierrors.IsNotFound(c.Get(ctx, client.ObjectKey{Name: "chatbot"}, &hubv1.Project{}))
	}, 2*time.Second).Should(BeTrue())
	g.Expect(hub.stop()).To(Succeed())
}

// setTestLogger sends the hub's logs to stderr when HUB_TEST_LOG is set,
// and nowhere otherwise.
func setTestLogger() {
	logOut := io.Discard
	if os.Getenv("HUB_TEST_LOG") != "" {
		logOut = os.Stderr
	}
	ctrl.SetLogger(zap.New(zap.WriteTo(logOut)))
}

type runningDev struct {
	out         *testlog.Buffer
	gatewayAddr string
	done        chan error
	// stop stops the hub and returns how Run ended; it may be called twice.
	stop func() error
}

// startDev runs the hub in the background and waits until it says it runs.
func startDev(t testing.TB, stateDir string) *runningDev {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	d := &runningDev{out: &testlog.Buffer{}, done: make(chan error, 1), gatewayAddr: freeAddr(t)}
	d.stop = sync.OnceValue(func() error {
		cancel()
		return <-d.done
	})
	go func() {
		d.done <- Run(ctx, Options{StateDir: stateDir, Out: d.out, SkipControllerNameValidation: true, GatewayAddr: d.gatewayAddr})
	}()
	t.Cleanup(func() { _ = d.stop() })
	deadline := time.Now().Add(2 * time.Minute)
	for !strings.Contains(d.out.String(), "Platform Hub is running") {
		select {
		case err := <-d.done:
			d.done <- err // for stop, in the cleanup
			t.Fatalf("hub dev stopped: %v\n%s", err, d.out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("hub dev did not come up:\n%s", d.out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return d
}

func clientFromKubeconfig(g Gomega, path string) client.Client {
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	g.Expect(err).NotTo(HaveOccurred())
	c, err := client.New(cfg, client.Options{Scheme: scheme.New()})
	g.Expect(err).NotTo(HaveOccurred())
	return c
}

func freeAddr(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().String()
}

// processesUsing lists the command lines of processes that mention dir.
func processesUsing(dir string) []string {
	entries, _ := os.ReadDir("/proc")
	var found []string
	for _, e := range entries {
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && bytes.Contains(cmdline, []byte(dir)) {
			found = append(found, string(bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '})))
		}
	}
	return found
}

// TestSamplesDecidedOnFirstStart: a state directory started without the
// samples never gets them, though a later start asks for them.
func TestSamplesDecidedOnFirstStart(t *testing.T) {
	g := NewWithT(t)
	stateDir := t.TempDir()
	g.Expect(applySamplesOnce(context.Background(), nil, stateDir, false)).To(Succeed())
	marker, err := os.ReadFile(filepath.Join(stateDir, samplesAppliedFile))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(string(marker)).To(HavePrefix("skipped "))
	// With no manager, applying would fail: the marker must stop it first.
	g.Expect(applySamplesOnce(context.Background(), nil, stateDir, true)).To(Succeed())
}

// Package testbrowser starts headless Chromium for the dashboard's browser
// tests (Debian's chromium, which hack/install-test-deps.sh installs).
// Tests only; nothing in the hub's binaries imports it.
package testbrowser

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Viewport is a screen size pages must fit.
type Viewport struct {
	Name          string
	Width, Height int64
}

// Viewports are the sizes the dashboard is checked at: desktop, tablet and
// phone.
var Viewports = []Viewport{{"desktop", 1280, 800}, {"tablet", 820, 1180}, {"phone", 390, 844}}

// Start starts a headless Chromium for t and returns its context; it is
// stopped when t ends. Root (in a container) runs it without its sandbox.
// flags add to the defaults.
func Start(t *testing.T, flags ...chromedp.ExecAllocatorOption) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("Chromium is needed: run hack/install-test-deps.sh (make test does)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.Flag("headless", true),
		chromedp.Flag("disable-gpu", true), chromedp.Flag("disable-dev-shm-usage", true))
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox)
	}
	opts = append(opts, flags...)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(alloc)
	ctx, cancelTimeout := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(func() { cancelTimeout(); cancel(); cancelAlloc() })
	return ctx
}

// CheckFits shows the page at path (on base) at every viewport, fails t
// when the page scrolls sideways (its document wider than the window), and
// saves a screenshot of each into $DASHBOARD_SCREENSHOTS, when set, as
// dashboard-<name>-<viewport>.png. ready is a CSS selector the page shows
// once loaded.
func CheckFits(t *testing.T, ctx context.Context, base, path, name, ready string) {
	t.Helper()
	dir := os.Getenv("DASHBOARD_SCREENSHOTS")
	for _, v := range Viewports {
		err := chromedp.Do(ctx, chromedp.EmulateViewport(v.Width, v.Height), chromedp.Navigate(base+path), chromedp.WaitVisible(chromedp.CSS(ready)))
		if err != nil {
			t.Fatalf("%s at %s: %v", path, v.Name, err)
		}
		fits, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.documentElement.scrollWidth <= window.innerWidth`))
		if err != nil || !fits {
			t.Errorf("%s at %s (%dx%d) scrolls sideways (%v)", path, v.Name, v.Width, v.Height, err)
		}
		shot, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
		if err != nil {
			t.Fatalf("screenshot of %s at %s: %v", path, v.Name, err)
		}
		if dir != "" {
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("dashboard-%s-%s.png", name, v.Name)), shot, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

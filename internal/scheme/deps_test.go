package scheme_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestRolesDoNotImportTheManager: the gateway and the server are built
// without the manager's wiring, controllers and webhooks, which they have
// no use for (and which would make their binaries' graph the manager's).
func TestRolesDoNotImportTheManager(t *testing.T) {
	const module = "github.com/minimax/platform-hub/"
	out, err := exec.Command("go", "list", "-deps", module+"internal/gateway/...", module+"internal/server/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, pkg := range strings.Fields(string(out)) {
		switch pkg {
		case module + "controllers", module + "webhooks", module + "internal/operator":
			t.Errorf("the gateway or the server depends on %s", pkg)
		}
	}
}

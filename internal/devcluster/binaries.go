package devcluster

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Binaries lists the control-plane programs a Cluster runs.
var Binaries = []string{"etcd", "kube-apiserver", "kube-controller-manager"}

// FindBinDir finds the directory holding the control-plane binaries without
// the user exporting anything: the KUBEBUILDER_ASSETS directory when set (the
// envtest convention), else the directory of the running hub binary when it
// holds them (bin/ after `make build`), else bin/ at the root of the source
// tree that contains the working directory (tests run inside it).
func FindBinDir() (string, error) {
	var candidates []string
	if dir := os.Getenv("KUBEBUILDER_ASSETS"); dir != "" {
		candidates = append(candidates, dir)
	}
	if exe, err := os.Executable(); err == nil {
		candidates = append(candidates, filepath.Dir(exe))
	}
	if wd, err := os.Getwd(); err == nil {
		if root, ok := sourceRoot(wd); ok {
			candidates = append(candidates, filepath.Join(root, "bin"))
		}
	}
	for _, dir := range candidates {
		if hasBinaries(dir) {
			return dir, nil
		}
	}
	return "", errors.New("the control-plane binaries (etcd, kube-apiserver, kube-controller-manager) " +
		"were not found in bin/; run `make envtest-assets` in the platform-hub source tree to build them")
}

// sourceRoot walks up from dir to the directory holding hack/controlplane/go.mod.
func sourceRoot(dir string) (string, bool) {
	for {
		if _, err := os.Stat(filepath.Join(dir, "hack", "controlplane", "go.mod")); err == nil {
			return dir, true
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", false
		}
		dir = parent
	}
}

func hasBinaries(dir string) bool {
	for _, name := range Binaries {
		info, err := os.Stat(filepath.Join(dir, name))
		if err != nil || info.IsDir() || info.Mode()&0o111 == 0 {
			return false
		}
	}
	return true
}

// checkBinaries explains which binary is missing from dir.
func checkBinaries(dir string) error {
	for _, name := range Binaries {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			return fmt.Errorf("%s not found in %s; run `make envtest-assets` to build it", name, dir)
		}
	}
	return nil
}

package controllers_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"
)

// externalSecretsModule is the External Secrets Operator release whose CRDs
// the tests install, to validate the PushSecrets the hub writes against the
// real schema.
const externalSecretsModule = "github.com/external-secrets/external-secrets@v0.16.2"

// externalSecretsCRDs returns ESO's PushSecret and SecretStore CRDs, taken
// from the module (downloaded through the Go module proxy when missing).
func externalSecretsCRDs() ([]*apiextensionsv1.CustomResourceDefinition, error) {
	cmd := exec.Command("go", "mod", "download", "-json", externalSecretsModule)
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod")
	cmd.Dir = os.TempDir() // outside any module
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("downloading %s: %w", externalSecretsModule, err)
	}
	var mod struct{ Dir string }
	if err := json.Unmarshal(out, &mod); err != nil {
		return nil, fmt.Errorf("locating %s: %w", externalSecretsModule, err)
	}
	if mod.Dir == "" {
		return nil, fmt.Errorf("locating %s: go mod download printed no directory: %s", externalSecretsModule, out)
	}
	var crds []*apiextensionsv1.CustomResourceDefinition
	for _, name := range []string{"external-secrets.io_pushsecrets.yaml", "external-secrets.io_secretstores.yaml"} {
		raw, err := os.ReadFile(filepath.Join(mod.Dir, "config", "crds", "bases", name))
		if err != nil {
			return nil, err
		}
		crd := &apiextensionsv1.CustomResourceDefinition{}
		if err := yaml.Unmarshal(raw, crd); err != nil {
			return nil, fmt.Errorf("decoding %s: %w", name, err)
		}
		crds = append(crds, crd)
	}
	return crds, nil
}

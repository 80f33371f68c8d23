// Package config embeds the manifests that the hub installs by itself: the
// CRDs and webhook configuration for `hub dev` and the tests, and the samples
// that `hub dev` applies on first start. The rest of this directory is the
// kustomize tree for installing into a real cluster.
package config

import (
	"bufio"
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

//go:embed crd/bases/*.yaml webhook/manifests.yaml samples/*.yaml
var files embed.FS

// CRDs returns the CustomResourceDefinitions of the hub.
func CRDs() ([]*apiextensionsv1.CustomResourceDefinition, error) {
	docs, err := documents("crd/bases")
	if err != nil {
		return nil, err
	}
	crds := make([]*apiextensionsv1.CustomResourceDefinition, 0, len(docs))
	for _, doc := range docs {
		crd := &apiextensionsv1.CustomResourceDefinition{}
		if err := yaml.UnmarshalStrict(doc.data, crd); err != nil {
			return nil, fmt.Errorf("decoding CRD in %s: %w", doc.file, err)
		}
		crds = append(crds, crd)
	}
	return crds, nil
}

// ValidatingWebhooks returns the hub's validating webhook configurations, as
// generated: each webhook points at the in-cluster Service, which callers
// rewrite for where the webhook server really runs.
func ValidatingWebhooks() ([]*admissionv1.ValidatingWebhookConfiguration, error) {
	docs, err := documents("webhook/manifests.yaml")
	if err != nil {
		return nil, err
	}
	var hooks []*admissionv1.ValidatingWebhookConfiguration
	for _, doc := range docs {
		hook := &admissionv1.ValidatingWebhookConfiguration{}
		if err := yaml.UnmarshalStrict(doc.data, hook); err != nil {
			return nil, fmt.Errorf("decoding webhook configuration in %s: %w", doc.file, err)
		}
		if hook.Kind == "ValidatingWebhookConfiguration" {
			hooks = append(hooks, hook)
		}
	}
	return hooks, nil
}

// Samples returns the sample resources, in file-name order, which is also the
// order to apply them in (the Organization before the Projects).
func Samples() ([]*unstructured.Unstructured, error) {
	docs, err := documents("samples")
	if err != nil {
		return nil, err
	}
	objs := make([]*unstructured.Unstructured, 0, len(docs))
	for _, doc := range docs {
		obj := &unstructured.Unstructured{}
		if err := yaml.Unmarshal(doc.data, &obj.Object); err != nil {
			return nil, fmt.Errorf("decoding sample in %s: %w", doc.file, err)
		}
		objs = append(objs, obj)
	}
	return objs, nil
}

type document struct {
	file string
	data []byte
}

// documents splits every YAML file under root (a file or a directory) into
// its non-empty documents. Kustomization files are skipped.
func documents(root string) ([]document, error) {
	var names []string
	err := fs.WalkDir(files, root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && path.Ext(p) == ".yaml" && path.Base(p) != "kustomization.yaml" {
			names = append(names, p)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Strings(names)

	var docs []document
	for _, name := range names {
		raw, err := files.ReadFile(name)
		if err != nil {
			return nil, err
		}
		reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(raw)))
		for {
			data, err := reader.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("reading %s: %w", name, err)
			}
			if len(bytes.TrimSpace(data)) == 0 || isOnlyComments(data) {
				continue
			}
			docs = append(docs, document{file: name, data: data})
		}
	}
	return docs, nil
}

// isOnlyComments reports whether a YAML document holds nothing but comments.
func isOnlyComments(data []byte) bool {
	for _, line := range bytes.Split(data, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) > 0 && line[0] != '#' {
			return false
		}
	}
	return true
}

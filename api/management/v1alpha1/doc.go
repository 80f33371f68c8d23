// Package v1alpha1 contains the management.hub.minimax.io/v1alpha1 API,
// served by `hub apiserver` (an aggregated API server) rather than stored as
// CRDs: objects computed on request, such as usage reports, and requests
// that return something once, such as a new key's plaintext.
//
// The same Go types serve as the API server's internal version: the group
// has one version, so there is nothing to convert.
//
// +kubebuilder:object:generate=true
// +k8s:openapi-gen=true
// +k8s:openapi-model-package=io.minimax.hub.management.v1alpha1
// +groupName=management.hub.minimax.io
package v1alpha1

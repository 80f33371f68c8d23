// Package v1alpha1 contains the hub.minimax.io/v1alpha1 API: the resources a
// platform team declares to run the account side of an AI API platform.
//
// The management API serves some of these types in its own group too (its
// members), so they carry OpenAPI definitions and model names as well as
// the CRDs' schemas.
//
// +kubebuilder:object:generate=true
// +k8s:openapi-gen=true
// +k8s:openapi-model-package=io.minimax.hub.v1alpha1
// +groupName=hub.minimax.io
package v1alpha1

package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// UsageRecord is one API call as the usage store keeps it, priced: the
// per-call log behind every usage report bucket. Records are listed, with
// field selectors for the range and the filters, and paged with limit and
// continue:
//
//	kubectl get usagerecords --field-selector startTime=2026-11-27T10:00:00Z,endTime=2026-11-27T11:00:00Z,project=chatbot
//
// The fields are startTime and endTime (RFC 3339, the range [startTime,
// endTime); default the current billing cycle), project, keyID, service,
// model and endpoint, each compared with "=". A record is named after the
// call's ID.
//
// Who may list them: every hub role (Viewer and up).
//
// +kubebuilder:object:root=true
// +genclient
// +genclient:nonNamespaced
// +genclient:onlyVerbs=list
type UsageRecord struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// time is when the call was made.
	Time metav1.Time `json:"time"`
	// project, keyID, service, endpoint and model say what was called,
	// with which key.
	Project  string `json:"project"`
	KeyID    string `json:"keyID"`
	Service  string `json:"service"`
	Endpoint string `json:"endpoint"`
	// +optional
	Model string `json:"model,omitempty"`
	// inputTokens, outputTokens, videoSeconds and storageByteHours are
	// what the call used.
	InputTokens  int64 `json:"inputTokens"`
	OutputTokens int64 `json:"outputTokens"`
	// cachedInputTokens are the part of inputTokens read from a prompt
	// cache.
	// +optional
	CachedInputTokens int64 `json:"cachedInputTokens,omitempty"`
	// +optional
	VideoSeconds int64 `json:"videoSeconds,omitempty"`
	// +optional
	StorageByteHours int64 `json:"storageByteHours,omitempty"`
	// statusCode is the HTTP status the caller got.
	StatusCode int32 `json:"statusCode"`
	// cost is the call's price in the organization's currency, a decimal
	// string; unpriced is set when its model has no price (cost is then 0).
	Cost string `json:"cost"`
	// +optional
	Unpriced bool `json:"unpriced,omitempty"`
	// currency is the organization's currency (ISO 4217).
	// +optional
	Currency string `json:"currency,omitempty"`
}

// UsageRecordList is a page of UsageRecords, in time order (then by ID);
// metadata.continue reads on.
//
// +kubebuilder:object:root=true
type UsageRecordList struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []UsageRecord `json:"items"`
}

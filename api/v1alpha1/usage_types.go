package v1alpha1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// UsageSummary is usage over the current billing cycle, written by the usage
// server at a bounded rate (so it may trail live traffic by some seconds).
type UsageSummary struct {
	// cycleStart is the start of the billing cycle summed.
	// +optional
	CycleStart *metav1.Time `json:"cycleStart,omitempty"`

	// calls counts API calls.
	// +optional
	Calls int64 `json:"calls,omitempty"`

	// inputTokens and outputTokens count tokens.
	// +optional
	InputTokens int64 `json:"inputTokens,omitempty"`
	// +optional
	OutputTokens int64 `json:"outputTokens,omitempty"`

	// videoSeconds counts seconds of generated video.
	// +optional
	VideoSeconds int64 `json:"videoSeconds,omitempty"`

	// storageByteHours counts storage held, in byte-hours.
	// +optional
	StorageByteHours int64 `json:"storageByteHours,omitempty"`

	// spend is the cost of the usage in the organization's currency, as a
	// decimal string; unpriced calls are not in it (see unpricedCalls).
	// +optional
	Spend Amount `json:"spend,omitempty"`

	// unpricedCalls counts calls of models that have no price.
	// +optional
	UnpricedCalls int64 `json:"unpricedCalls,omitempty"`

	// byService splits the usage by service.
	// +optional
	// +listType=map
	// +listMapKey=service
	// +kubebuilder:validation:MaxItems=8
	ByService []ServiceUsage `json:"byService,omitempty"`

	// updatedAt is when the summary was computed.
	// +optional
	UpdatedAt *metav1.Time `json:"updatedAt,omitempty"`
}

// ServiceUsage is the usage of one service.
type ServiceUsage struct {
	// service is chat, video, fine_tuning or storage.
	// +required
	// +kubebuilder:validation:Enum=chat;video;fine_tuning;storage
	Service string `json:"service"`
	// calls counts API calls.
	// +optional
	Calls int64 `json:"calls,omitempty"`
	// tokens counts input and output tokens.
	// +optional
	Tokens int64 `json:"tokens,omitempty"`
	// videoSeconds counts seconds of generated video.
	// +optional
	VideoSeconds int64 `json:"videoSeconds,omitempty"`
	// storageByteHours counts storage in byte-hours.
	// +optional
	StorageByteHours int64 `json:"storageByteHours,omitempty"`
	// spend is the cost, a decimal string.
	// +optional
	Spend Amount `json:"spend,omitempty"`
}

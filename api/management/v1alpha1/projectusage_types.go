package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ProjectUsage is one project's usage in the organization's current billing
// cycle, computed on request from the usage store: `kubectl get
// projectusages` lists every project with its calls, tokens and spend. It
// is named after its Project and cannot be written.
//
// Who may read them: every hub role (Viewer and up).
//
// +kubebuilder:object:root=true
// +genclient
// +genclient:nonNamespaced
// +genclient:onlyVerbs=get,list
type ProjectUsage struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// cycleStart and cycleEnd bound the current billing cycle, from the
	// Organization's cycleStartDay and timeZone (the calendar month in UTC
	// without an Organization).
	CycleStart metav1.Time `json:"cycleStart"`
	CycleEnd   metav1.Time `json:"cycleEnd"`

	// currency is the organization's currency (ISO 4217) of cost.
	// +optional
	Currency string `json:"currency,omitempty"`

	// usage sums the project's usage in the cycle so far, priced.
	Usage UsageFigures `json:"usage"`
}

// ProjectUsageList lists ProjectUsages.
//
// +kubebuilder:object:root=true
type ProjectUsageList struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ProjectUsage `json:"items"`
}

package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// CapEnforcement says what happens at 100% of a cap.
// +kubebuilder:validation:Enum=Hard;AlertOnly
type CapEnforcement string

const (
	// CapHard stops all API activity of what the cap covers at 100%: the
	// gateway answers 429 until the cap is raised or the next cycle starts.
	CapHard CapEnforcement = "Hard"
	// CapAlertOnly only sends alerts.
	CapAlertOnly CapEnforcement = "AlertOnly"
)

// SpendingCapSpec defines a monthly budget.
// +kubebuilder:validation:XValidation:rule="has(self.limit) || has(self.tokenLimit)",message="set limit (money per billing cycle), tokenLimit (tokens per billing cycle), or both"
type SpendingCapSpec struct {
	// limit is the most that may be spent in one billing cycle, in the
	// organization's currency, as a decimal string ("500.00").
	// +optional
	// +kubebuilder:validation:XValidation:rule="self.matches('^[1-9]') || self.matches('[.][0-9]*[1-9]')",message="must be more than zero"
	Limit *Amount `json:"limit,omitempty"`

	// tokenLimit is the most input and output tokens that may be used in one
	// billing cycle.
	// +optional
	// +kubebuilder:validation:Minimum=1
	TokenLimit *int64 `json:"tokenLimit,omitempty"`

	// enforcement is Hard (stop all API activity at 100%, until the cap is
	// raised or the next cycle starts) or AlertOnly (default).
	// +optional
	// +kubebuilder:default=AlertOnly
	Enforcement CapEnforcement `json:"enforcement,omitempty"`

	// thresholds are the percentages of the cap at which alerts fire, once
	// each per billing cycle, in ascending order. Default 50, 80, 100.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=10
	// +kubebuilder:validation:items:Minimum=1
	// +kubebuilder:validation:items:Maximum=100
	// +kubebuilder:validation:XValidation:rule="self.isSorted()",message="list the thresholds in ascending order, for example [50, 80, 100]"
	Thresholds []int32 `json:"thresholds,omitempty"`

	// group, in the hub's namespace only, makes the cap a group cap: it caps
	// the combined usage of the keys owned by the group's members (their
	// spec.owner is a member's email), in every project.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="group cannot be changed; create another cap"
	Group string `json:"group,omitempty"`

	// channels name the NotificationChannels (in this namespace) that receive
	// this cap's alerts, besides the organization's default channels.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:MaxLength=253
	Channels []string `json:"channels,omitempty"`
}

// DefaultThresholds are the alert thresholds of a cap that names none.
var DefaultThresholds = []int32{50, 80, 100}

// EffectiveThresholds returns the cap's thresholds, or the defaults.
func (s *SpendingCapSpec) EffectiveThresholds() []int32 {
	if len(s.Thresholds) == 0 {
		return DefaultThresholds
	}
	return s.Thresholds
}

// CapScope is what a cap covers.
// +kubebuilder:validation:Enum=Project;Organization;Group
type CapScope string

const (
	// CapScopeProject means the cap is in a project's namespace and covers that
	// project.
	CapScopeProject CapScope = "Project"
	// CapScopeOrganization means the cap is in the hub's namespace and
	// covers every project.
	CapScopeOrganization CapScope = "Organization"
	// CapScopeGroup means the cap names a group and covers the keys its
	// members own.
	CapScopeGroup CapScope = "Group"
)

// CapState summarises how close usage is to the cap.
// +kubebuilder:validation:Enum=OK;Warning;Exceeded
type CapState string

const (
	// CapOK means usage is below the first threshold.
	CapOK CapState = "OK"
	// CapWarning means usage is at or past a threshold, below 100%.
	CapWarning CapState = "Warning"
	// CapExceeded means usage is at or past 100%.
	CapExceeded CapState = "Exceeded"
)

// SpendingCapStatus is the cap's state in the current billing cycle.
type SpendingCapStatus struct {
	// scope is what the cap covers: Project or Organization.
	// +optional
	Scope CapScope `json:"scope,omitempty"`

	// project is the project the cap covers (scope Project).
	// +optional
	Project string `json:"project,omitempty"`

	// cycleStart and cycleEnd bound the billing cycle the figures are for.
	// +optional
	CycleStart *metav1.Time `json:"cycleStart,omitempty"`
	// +optional
	CycleEnd *metav1.Time `json:"cycleEnd,omitempty"`

	// spent is the spend in the cycle, in the organization's currency.
	// +optional
	Spent Amount `json:"spent,omitempty"`

	// tokens counts input and output tokens in the cycle.
	// +optional
	Tokens int64 `json:"tokens,omitempty"`

	// unpricedCalls counts the calls in the cycle whose model had no price
	// and whose service had no default: they are not in spent. A Hard money
	// cap refuses such calls at the gateway; these got through before the
	// cap existed, under an AlertOnly cap, or from another gateway.
	// +optional
	UnpricedCalls int64 `json:"unpricedCalls,omitempty"`

	// percent is how much of the cap is used, rounded down: the larger of
	// spent/limit and tokens/tokenLimit.
	// Always written, so that 0% shows as 0.
	// +optional
	Percent int32 `json:"percent"`

	// state is OK, Warning (a threshold is crossed) or Exceeded (100%).
	// +optional
	State CapState `json:"state,omitempty"`

	// burnRate is the rate of use over the last 24 hours of the cycle.
	// +optional
	BurnRate *BurnRate `json:"burnRate,omitempty"`

	// projectedExhaustion is when the cap will reach 100% at the burn rate,
	// if that is before the cycle ends.
	// +optional
	ProjectedExhaustion *metav1.Time `json:"projectedExhaustion,omitempty"`

	// alertsFired lists the thresholds that fired in this cycle.
	// +optional
	// +listType=map
	// +listMapKey=threshold
	// +kubebuilder:validation:MaxItems=10
	AlertsFired []FiredAlert `json:"alertsFired,omitempty"`

	// evaluatedAt is when the figures were computed.
	// +optional
	EvaluatedAt *metav1.Time `json:"evaluatedAt,omitempty"`

	// observedGeneration is the spec generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions: Ready, and CapReached while a Hard cap stops traffic.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=8
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// BurnRate is spend and tokens per hour.
type BurnRate struct {
	// spendPerHour is money per hour, a decimal string.
	// +optional
	SpendPerHour Amount `json:"spendPerHour,omitempty"`
	// tokensPerHour is tokens per hour.
	// +optional
	TokensPerHour int64 `json:"tokensPerHour,omitempty"`
}

// FiredAlert is a threshold that fired.
type FiredAlert struct {
	// threshold is the percentage.
	// +required
	Threshold int32 `json:"threshold"`
	// firedAt is when usage crossed it.
	// +required
	FiredAt metav1.Time `json:"firedAt"`
}

// SpendingCap is a monthly budget in money and/or tokens. In a project's
// namespace it caps that project; in the hub's own namespace it caps the
// whole organization.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=cap;caps,categories=hub
// +kubebuilder:printcolumn:name="Scope",type=string,JSONPath=`.status.scope`
// +kubebuilder:printcolumn:name="Limit",type=string,JSONPath=`.spec.limit`
// +kubebuilder:printcolumn:name="Token Limit",type=integer,JSONPath=`.spec.tokenLimit`
// +kubebuilder:printcolumn:name="Enforcement",type=string,JSONPath=`.spec.enforcement`
// +kubebuilder:printcolumn:name="Spent",type=string,JSONPath=`.status.spent`
// +kubebuilder:printcolumn:name="Tokens",type=integer,JSONPath=`.status.tokens`
// +kubebuilder:printcolumn:name="Percent",type=integer,JSONPath=`.status.percent`
// +kubebuilder:printcolumn:name="State",type=string,JSONPath=`.status.state`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type SpendingCap struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec SpendingCapSpec `json:"spec"`

	// +optional
	Status SpendingCapStatus `json:"status,omitempty"`
}

// SpendingCapList contains a list of SpendingCap.
// +kubebuilder:object:root=true
type SpendingCapList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []SpendingCap `json:"items"`
}

func init() {
	register(&SpendingCap{}, &SpendingCapList{})
}

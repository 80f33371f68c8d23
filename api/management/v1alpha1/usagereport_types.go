package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// UsageReport asks for the organization's usage over a time range, as
// SubjectAccessReview asks a question: create one, and the answer comes back
// in its status. Nothing is stored; `kubectl create -f report.yaml -o yaml`
// prints the report.
//
// Who may create one: every hub role (Viewer and up), who all read the
// organization's usage.
//
// +kubebuilder:object:root=true
// +genclient
// +genclient:nonNamespaced
// +genclient:onlyVerbs=create
type UsageReport struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the question.
	Spec UsageReportSpec `json:"spec"`
	// status is the answer.
	// +optional
	Status UsageReportStatus `json:"status,omitempty"`
}

// UsageReportSpec is what a report covers and how it is cut.
type UsageReportSpec struct {
	// startTime and endTime bound the report: [startTime, endTime).
	StartTime metav1.Time `json:"startTime"`
	EndTime   metav1.Time `json:"endTime"`

	// granularity is the size of the time buckets: Minute, Hour, Day or
	// Month. Empty means one bucket for the whole range. A report holds at
	// most 2000 buckets. Minute buckets are summed from the raw events,
	// which are kept for a shorter time than the hourly sums (90 days by
	// default): an hour whose raw events are gone counts whole in the
	// minute it starts.
	// +optional
	Granularity Granularity `json:"granularity,omitempty"`

	// timeZone is the IANA time zone where Day and Month buckets start, and
	// where "the same dates last month" are counted; hour buckets are UTC
	// hours. Empty means the organization's billing time zone.
	// +optional
	TimeZone string `json:"timeZone,omitempty"`

	// groupBy splits every bucket by these dimensions.
	// +optional
	// +listType=set
	GroupBy []Dimension `json:"groupBy,omitempty"`

	// projects, keyIDs, services, models, endpoints and members keep only usage
	// whose value is one of those listed (at most 100 each); an empty list
	// keeps everything.
	// +optional
	// +listType=set
	Projects []string `json:"projects,omitempty"`
	// +optional
	// +listType=set
	KeyIDs []string `json:"keyIDs,omitempty"`
	// +optional
	// +listType=set
	Services []string `json:"services,omitempty"`
	// +optional
	// +listType=set
	Models []string `json:"models,omitempty"`
	// +optional
	// +listType=set
	Endpoints []string `json:"endpoints,omitempty"`
	// members keeps the usage of keys these members own (emails, compared
	// without case).
	// +optional
	// +listType=set
	Members []string `json:"members,omitempty"`

	// compare adds the figures of the period of the same length just
	// before startTime, and of the same dates one month earlier.
	// +optional
	Compare bool `json:"compare,omitempty"`

	// topGroups, when above zero, keeps the buckets of the topGroups groups
	// with the highest cost over the range (then the most calls); every
	// other group's usage is summed, bucket by bucket, into one bucket
	// with others set and no group values. total and the comparisons are
	// unchanged. A chart of a thousand projects asks for its lines so.
	// +optional
	// +kubebuilder:validation:Minimum=0
	TopGroups int32 `json:"topGroups,omitempty"`

	// groupTotals, when above zero, adds status.groupTotals: the whole
	// range's figures of the groupTotals groups with the highest cost
	// (then the most calls), the costliest first, and status.groupCount.
	// A table of a thousand projects asks for its rows so, while topGroups
	// keeps the buckets to a chart's few lines.
	// +optional
	// +kubebuilder:validation:Minimum=0
	GroupTotals int32 `json:"groupTotals,omitempty"`

	// csv adds status.csv: the buckets as CSV, for a spreadsheet, with
	// kubectl create -f report.yaml -o jsonpath='{.status.csv}'. Clients
	// that can send Accept: text/csv get the same CSV as the whole answer.
	// +optional
	CSV bool `json:"csv,omitempty"`
}

// Granularity is the size of a report's time buckets.
// +enum
type Granularity string

// Granularities.
const (
	GranularityMinute Granularity = "Minute"
	GranularityHour   Granularity = "Hour"
	GranularityDay    Granularity = "Day"
	GranularityMonth  Granularity = "Month"
)

// Dimension is something usage can be grouped by.
// +enum
type Dimension string

// Dimensions.
const (
	DimensionProject  Dimension = "Project"
	DimensionKeyID    Dimension = "KeyID"
	DimensionService  Dimension = "Service"
	DimensionModel    Dimension = "Model"
	DimensionEndpoint Dimension = "Endpoint"
	// DimensionMember groups by the member who owns each key (their email).
	DimensionMember Dimension = "Member"
)

// UsageReportStatus is the report.
type UsageReportStatus struct {
	// currency is the organization's currency (ISO 4217) of every cost.
	// +optional
	Currency string `json:"currency,omitempty"`
	// timeZone is the zone the report was cut in.
	// +optional
	TimeZone string `json:"timeZone,omitempty"`

	// buckets are in time order, and within a time bucket in the order of
	// their group values.
	// +optional
	// +listType=atomic
	Buckets []UsageBucket `json:"buckets,omitempty"`

	// otherGroups is how many groups topGroups summed into the others.
	// +optional
	OtherGroups int32 `json:"otherGroups,omitempty"`

	// groupTotals, with spec.groupTotals, holds a bucket per group for the
	// whole range (startTime to endTime), of the costliest groups, the
	// costliest first; groupCount is how many groups had usage in the
	// range, those listed and those not.
	// +optional
	// +listType=atomic
	GroupTotals []UsageBucket `json:"groupTotals,omitempty"`
	// +optional
	GroupCount int32 `json:"groupCount,omitempty"`

	// total sums the whole range.
	// +optional
	Total UsageFigures `json:"total,omitzero"`

	// previous is the period of the same length just before startTime;
	// sameDatesLastMonth the same dates one month earlier. Both only with
	// spec.compare.
	// +optional
	Previous *UsageFigures `json:"previous,omitempty"`
	// +optional
	SameDatesLastMonth *UsageFigures `json:"sameDatesLastMonth,omitempty"`

	// csv holds the buckets as CSV (RFC 4180, a header row first), with
	// spec.csv only.
	// +optional
	CSV string `json:"csv,omitempty"`
}

// UsageBucket is the usage of one group in one time bucket.
type UsageBucket struct {
	// startTime and endTime bound the bucket, within the report's range.
	StartTime metav1.Time `json:"startTime"`
	EndTime   metav1.Time `json:"endTime"`

	// project, keyID, service, model and endpoint are the group's values,
	// for the dimensions the report groups by.
	// +optional
	Project string `json:"project,omitempty"`
	// +optional
	KeyID string `json:"keyID,omitempty"`
	// +optional
	Service string `json:"service,omitempty"`
	// +optional
	Model string `json:"model,omitempty"`
	// +optional
	Endpoint string `json:"endpoint,omitempty"`
	// member is the email of the member who owns the keys, when grouped by
	// Member; empty for keys whose owner the usage server has not recorded.
	// +optional
	Member string `json:"member,omitempty"`
	// others is set on the bucket that sums the groups topGroups left
	// out; it has no group values.
	// +optional
	Others bool `json:"others,omitempty"`

	UsageFigures `json:",inline"`
}

// UsageFigures are the sums of some usage, priced.
type UsageFigures struct {
	// calls counts API calls.
	Calls int64 `json:"calls"`
	// inputTokens and outputTokens count tokens.
	InputTokens  int64 `json:"inputTokens"`
	OutputTokens int64 `json:"outputTokens"`
	// cachedInputTokens are the part of inputTokens read from a prompt
	// cache, priced at the cached input price where the model has one.
	// +optional
	CachedInputTokens int64 `json:"cachedInputTokens,omitempty"`
	// videoSeconds counts seconds of generated video.
	// +optional
	VideoSeconds int64 `json:"videoSeconds,omitempty"`
	// storageByteHours counts storage held, in byte-hours.
	// +optional
	StorageByteHours int64 `json:"storageByteHours,omitempty"`
	// cost is the price of the usage in the organization's currency, a
	// decimal string; unpriced calls add nothing (see unpricedCalls).
	Cost string `json:"cost"`
	// unpricedCalls counts calls of a model with no price in a service
	// with no default price; they are not in cost.
	// +optional
	UnpricedCalls int64 `json:"unpricedCalls,omitempty"`
}

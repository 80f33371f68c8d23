package v1alpha1

import (
	"fmt"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
)

// GroupName is the management API's group.
const GroupName = "management.hub.minimax.io"

// SchemeGroupVersion is the group version of this package's types.
var SchemeGroupVersion = schema.GroupVersion{Group: GroupName, Version: "v1alpha1"}

// Resource is a resource of this group, for API errors.
func Resource(resource string) schema.GroupResource {
	return SchemeGroupVersion.WithResource(resource).GroupResource()
}

var (
	// SchemeBuilder registers the types of this package.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)
	// AddToScheme adds this package's types to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

// knownTypes are every type of the group. Members are the hub's own type,
// served here too, for tools that reach only the management API.
func knownTypes() []runtime.Object {
	return []runtime.Object{&UsageReport{}, &ProjectUsage{}, &ProjectUsageList{}, &UsageRecord{}, &UsageRecordList{},
		&KeyRequest{}, &RotationRequest{}, &hubv1.Member{}, &hubv1.MemberList{},
		&AuditEvent{}, &AuditEventList{}, &Alert{}, &AlertList{}}
}

func addKnownTypes(scheme *runtime.Scheme) error {
	scheme.AddKnownTypes(SchemeGroupVersion, knownTypes()...)
	metav1.AddToGroupVersion(scheme, SchemeGroupVersion)
	for kind, fields := range map[string][]string{"UsageRecord": UsageRecordFields, "AuditEvent": AuditEventFields, "Alert": AlertFields} {
		if err := scheme.AddFieldLabelConversionFunc(SchemeGroupVersion.WithKind(kind), fieldLabels(kind, fields)); err != nil {
			return err
		}
	}
	return nil
}

// UsageRecordFields are the field selectors of UsageRecords.
var UsageRecordFields = []string{FieldStartTime, FieldEndTime, FieldProject, FieldKeyID, "service", "model", "endpoint"}

// Field selectors that several listed kinds share: the range, and the
// project.
const (
	FieldStartTime = "startTime"
	FieldEndTime   = "endTime"
	FieldProject   = "project"
	// FieldKeyID selects usage records by the public ID of their key.
	FieldKeyID = "keyID"
)

// AuditEventFields are the field selectors of AuditEvents.
var AuditEventFields = []string{FieldStartTime, FieldEndTime, "actor", "object.kind", "object.namespace", "object.name"}

// AlertFields are the field selectors of Alerts.
var AlertFields = []string{FieldStartTime, FieldEndTime, FieldProject, "type"}

// fieldLabels accepts the field selectors of a kind: metadata.name and
// fields.
func fieldLabels(kind string, fields []string) runtime.FieldLabelConversionFunc {
	return func(label, value string) (string, string, error) {
		if label == "metadata.name" || slices.Contains(fields, label) {
			return label, value, nil
		}
		return "", "", fmt.Errorf("field label %q is not supported for %ss; use %s", label, kind, strings.Join(fields, ", "))
	}
}

// AddInternalToScheme registers the same types as the group's internal
// version, which an API server built on k8s.io/apiserver needs: with one
// version and one set of types, converting is setting the kind.
func AddInternalToScheme(scheme *runtime.Scheme) error {
	scheme.AddKnownTypes(schema.GroupVersion{Group: GroupName, Version: runtime.APIVersionInternal}, knownTypes()...)
	return nil
}

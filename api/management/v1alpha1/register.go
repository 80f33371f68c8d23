package v1alpha1

import (
	"fmt"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
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

// knownTypes are every type of the group.
func knownTypes() []runtime.Object {
	return []runtime.Object{&UsageReport{}, &ProjectUsage{}, &ProjectUsageList{}, &UsageRecord{}, &UsageRecordList{},
		&KeyRequest{}, &RotationRequest{}}
}

func addKnownTypes(scheme *runtime.Scheme) error {
	scheme.AddKnownTypes(SchemeGroupVersion, knownTypes()...)
	metav1.AddToGroupVersion(scheme, SchemeGroupVersion)
	return scheme.AddFieldLabelConversionFunc(SchemeGroupVersion.WithKind("UsageRecord"), usageRecordField)
}

// UsageRecordFields are the field selectors of UsageRecords.
var UsageRecordFields = []string{"startTime", "endTime", "project", "keyID", "service", "model", "endpoint"}

// usageRecordField accepts the field selectors of UsageRecords.
func usageRecordField(label, value string) (string, string, error) {
	if label == "metadata.name" || slices.Contains(UsageRecordFields, label) {
		return label, value, nil
	}
	return "", "", fmt.Errorf("field label %q is not supported for UsageRecords; use %s", label, strings.Join(UsageRecordFields, ", "))
}

// AddInternalToScheme registers the same types as the group's internal
// version, which an API server built on k8s.io/apiserver needs: with one
// version and one set of types, converting is setting the kind.
func AddInternalToScheme(scheme *runtime.Scheme) error {
	scheme.AddKnownTypes(schema.GroupVersion{Group: GroupName, Version: runtime.APIVersionInternal}, knownTypes()...)
	return nil
}

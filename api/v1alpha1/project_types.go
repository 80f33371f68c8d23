package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ProjectSpec is what the platform team declares about a project.
type ProjectSpec struct {
	// displayName is the project's name as people read it.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	DisplayName string `json:"displayName,omitempty"`

	// description says what the project is for.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Description string `json:"description,omitempty"`

	// costCenter is a tag that finance uses to attribute the project's spend.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="self.matches('^[A-Za-z0-9][A-Za-z0-9._/-]*$')",message="must start with a letter or digit and contain only letters, digits, '.', '_', '/' and '-'"
	CostCenter string `json:"costCenter,omitempty"`

	// archived, when true, suspends the project: its API keys stop working and
	// no new keys can be created. Setting it back to false resumes the project.
	// +optional
	Archived bool `json:"archived,omitempty"`

	// access lists the members and groups that may work in the project, and
	// with which role. The hub grants it as RoleBindings in the project's
	// namespace.
	// +optional
	// +listType=map
	// +listMapKey=kind
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=256
	Access []ProjectAccess `json:"access,omitempty"`
}

// SubjectKind is the kind of subject a project grants access to.
// +kubebuilder:validation:Enum=Member;Group
type SubjectKind string

// Subject kinds.
const (
	SubjectMember SubjectKind = "Member"
	SubjectGroup  SubjectKind = "Group"
)

// ProjectAccess grants a member or a group a role in the project.
type ProjectAccess struct {
	// kind is Member or Group.
	// +required
	Kind SubjectKind `json:"kind"`

	// name is the name of the Member or Group resource.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`

	// role is the role granted in this project.
	// +required
	Role Role `json:"role"`
}

// ProjectPhase summarises where a project is in its life.
// +kubebuilder:validation:Enum=Pending;Active;Archived;CapReached;Terminating
type ProjectPhase string

// Project phases.
const (
	// ProjectPending: the project's namespace is not ready yet (or conflicts).
	ProjectPending ProjectPhase = "Pending"
	// ProjectActive: the project is in use.
	ProjectActive ProjectPhase = "Active"
	// ProjectArchived: spec.archived is true; keys are suspended.
	ProjectArchived ProjectPhase = "Archived"
	// ProjectCapReached: a hard spending cap is exhausted; keys are suspended
	// until the cap is raised or a new billing cycle starts.
	ProjectCapReached ProjectPhase = "CapReached"
	// ProjectTerminating: the project is being deleted with its namespace.
	ProjectTerminating ProjectPhase = "Terminating"
)

// ProjectStatus is what the hub observed about a project.
type ProjectStatus struct {
	// observedGeneration is the spec generation this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions describe the project's state; Ready comes first.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=16
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// phase summarises the project's state for people scanning a list.
	// +optional
	Phase ProjectPhase `json:"phase,omitempty"`

	// namespace is the namespace the hub created for the project. API keys,
	// spending caps and notification channels of the project live there.
	// +optional
	Namespace string `json:"namespace,omitempty"`

	// usage is the project's usage and spend in the current billing cycle.
	// +optional
	Usage *UsageSummary `json:"usage,omitempty"`
}

// Project groups API keys, spending caps and people around one piece of work.
// Each Project owns a namespace of the same name, created by the hub.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=proj
// +kubebuilder:printcolumn:name="Display Name",type=string,JSONPath=`.spec.displayName`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Namespace",type=string,JSONPath=`.status.namespace`
// +kubebuilder:printcolumn:name="Spend",type=string,JSONPath=`.status.usage.spend`
// +kubebuilder:printcolumn:name="Cost Center",type=string,JSONPath=`.spec.costCenter`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Project struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the desired state of the project.
	// +optional
	Spec ProjectSpec `json:"spec,omitempty"`

	// status is the observed state of the project.
	// +optional
	Status ProjectStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// ProjectList is a list of Projects.
type ProjectList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Project `json:"items"`
}

func init() {
	register(&Project{}, &ProjectList{})
}

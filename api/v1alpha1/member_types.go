package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// MemberSpec is a person in the organization.
type MemberSpec struct {
	// email is the person's address: where the invitation goes, and (with the
	// organization's usernamePrefix) the Kubernetes username their RBAC
	// bindings name, as the cluster's OIDC setup reports it.
	// +required
	// +kubebuilder:validation:MaxLength=254
	// +kubebuilder:validation:Pattern=`^[^@\s]+@[^@\s]+\.[^@\s]+$`
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="email cannot be changed; create a new Member for a new address"
	Email string `json:"email"`

	// role is the member's role in the organization: Owner, Admin,
	// Developer or Viewer. Developers work only in the projects that grant
	// them access (a project's access list, or a group's).
	// +required
	Role Role `json:"role"`

	// groups names the Groups the member belongs to.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MaxLength=253
	Groups []string `json:"groups,omitempty"`

	// disabled, when true, removes every permission of the member, keeping
	// the record (and the audit trail naming them).
	// +optional
	Disabled bool `json:"disabled,omitempty"`

	// resendInvitation sends the invitation again when it changes (any
	// value, such as a date), with a new link.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	ResendInvitation string `json:"resendInvitation,omitempty"`
}

// ProvisionedByAnnotation on a Member says what created it other than a
// person: ProvisionedBySSO for just-in-time provisioning at a first single
// sign-on. Such a Member is sent no invitation; signing in accepts it.
const (
	ProvisionedByAnnotation = "hub.minimax.io/provisioned-by"
	ProvisionedBySSO        = "sso"
)

// OIDCClientSecretLabel marks, with "true", a Secret in the hub's namespace
// that the dashboard may send to the Organization's identity provider as
// its OIDC client secret (spec.security.sso.oidc.clientSecretRef): no
// other Secret of that namespace leaves it that way.
const OIDCClientSecretLabel = "hub.minimax.io/oidc-client-secret"

// MemberPhase is where a member is.
// +kubebuilder:validation:Enum=Invited;Active;Disabled
type MemberPhase string

// Member phases.
const (
	// MemberInvited: the invitation is out and not accepted yet.
	MemberInvited MemberPhase = "Invited"
	// MemberActive: the member accepted the invitation.
	MemberActive MemberPhase = "Active"
	// MemberDisabled: spec.disabled is true.
	MemberDisabled MemberPhase = "Disabled"
)

// MemberStatus is what the hub knows of a member.
type MemberStatus struct {
	// phase is Invited, Active or Disabled.
	// +optional
	Phase MemberPhase `json:"phase,omitempty"`

	// username is the Kubernetes username the member's bindings name.
	// +optional
	Username string `json:"username,omitempty"`

	// invitationSentAt, invitationExpiresAt and acceptedAt track the
	// invitation.
	// +optional
	InvitationSentAt *metav1.Time `json:"invitationSentAt,omitempty"`
	// +optional
	InvitationExpiresAt *metav1.Time `json:"invitationExpiresAt,omitempty"`
	// +optional
	AcceptedAt *metav1.Time `json:"acceptedAt,omitempty"`

	// invitationDigest is the SHA-256 digest of the current invitation's
	// token ("sha256:" and hex); the token itself is only in the email.
	// Empty once the invitation is accepted: a link works once.
	// +optional
	// +kubebuilder:validation:MaxLength=71
	InvitationDigest string `json:"invitationDigest,omitempty"`

	// acceptedDigest is the digest of the token that accepted the
	// invitation, so that a second use of the link is told it was used.
	// +optional
	// +kubebuilder:validation:MaxLength=71
	AcceptedDigest string `json:"acceptedDigest,omitempty"`

	// invitationFor is the spec.resendInvitation value the current
	// invitation answers; a new value sends a new one.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	InvitationFor string `json:"invitationFor,omitempty"`

	// lastActiveAt is when the member last changed a hub resource, as
	// admission saw it (written at most once a minute; reads are not seen).
	// +optional
	LastActiveAt *metav1.Time `json:"lastActiveAt,omitempty"`

	// keysOwned counts the API keys whose owner is the member's email.
	// +optional
	KeysOwned int32 `json:"keysOwned,omitempty"`

	// mfaEnrolled is true once the member made a change signed in with a
	// second factor, as the identity provider reports it (the amr claim,
	// passed on by the API server as the user extra hub.minimax.io/amr).
	// +optional
	MFAEnrolled bool `json:"mfaEnrolled,omitempty"`

	// projects lists the projects the member works in, with the role.
	// +optional
	// +listType=map
	// +listMapKey=project
	// +kubebuilder:validation:MaxItems=512
	Projects []ProjectRole `json:"projects,omitempty"`

	// observedGeneration is the spec generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions: Ready when the member's RBAC bindings are in place.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=8
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// ProjectRole is a role in one project.
type ProjectRole struct {
	// +required
	Project string `json:"project"`
	// +required
	Role Role `json:"role"`
}

// Member is a person in the organization, with a role. The hub turns
// Members, Groups and project access lists into RBAC bindings, so kubectl,
// GitOps, the dashboard and the management API obey the same rules.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=mem;members,categories=hub
// +kubebuilder:printcolumn:name="Email",type=string,JSONPath=`.spec.email`
// +kubebuilder:printcolumn:name="Role",type=string,JSONPath=`.spec.role`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Keys",type=integer,JSONPath=`.status.keysOwned`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Member struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec MemberSpec `json:"spec"`

	// +optional
	Status MemberStatus `json:"status,omitempty"`
}

// MemberList contains a list of Member.
// +kubebuilder:object:root=true
type MemberList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Member `json:"items"`
}

// GroupSpec is a set of members who share project access.
type GroupSpec struct {
	// displayName is the group's name as people read it.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	DisplayName string `json:"displayName,omitempty"`

	// projectAccess grants the group's members a role in projects.
	// +optional
	// +listType=map
	// +listMapKey=project
	// +kubebuilder:validation:MaxItems=256
	ProjectAccess []ProjectRole `json:"projectAccess,omitempty"`
}

// GroupStatus reports the group's members.
type GroupStatus struct {
	// members counts the Members that name the group.
	// +optional
	Members int32 `json:"members,omitempty"`

	// observedGeneration is the spec generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions: Ready.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=8
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// Group gives its members (the Members that name it) access to projects.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=grp;groups,categories=hub
// +kubebuilder:printcolumn:name="Display Name",type=string,JSONPath=`.spec.displayName`
// +kubebuilder:printcolumn:name="Members",type=integer,JSONPath=`.status.members`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Group struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +optional
	Spec GroupSpec `json:"spec,omitempty"`

	// +optional
	Status GroupStatus `json:"status,omitempty"`
}

// GroupList contains a list of Group.
// +kubebuilder:object:root=true
type GroupList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Group `json:"items"`
}

func init() {
	register(&Member{}, &MemberList{}, &Group{}, &GroupList{})
}

package v1alpha1

// Role is a member's role in the organization or in a project.
// +kubebuilder:validation:Enum=Owner;Admin;Developer;Viewer
type Role string

// Roles, from most to least privileged.
const (
	RoleOwner     Role = "Owner"
	RoleAdmin     Role = "Admin"
	RoleDeveloper Role = "Developer"
	RoleViewer    Role = "Viewer"
)

// Amount is a non-negative decimal amount of money or a price, written as a
// string (for example "0.30") so that no value is ever rounded through a float.
// +kubebuilder:validation:MinLength=1
// +kubebuilder:validation:MaxLength=24
// +kubebuilder:validation:XValidation:rule="self.matches('^(0|[1-9][0-9]{0,13})([.][0-9]{1,9})?$')",message="must be a non-negative decimal such as \"0.30\": digits, an optional point and at most 9 decimal places, no sign or exponent"
type Amount string

// CIDR is an IPv4 or IPv6 network in CIDR notation, such as 203.0.113.0/24.
// +kubebuilder:validation:MaxLength=49
// +kubebuilder:validation:XValidation:rule="isCIDR(self)",message="must be a CIDR such as 203.0.113.0/24 or 2001:db8::/32"
// +kubebuilder:validation:XValidation:rule="!isCIDR(self) || cidr(self) == cidr(self).masked()",message="must be a network address with the host bits zero, such as 203.0.113.0/24 rather than 203.0.113.7/24"
type CIDR string

// KeyLifetime is how long an API key stays valid after it is issued.
// +kubebuilder:validation:Enum="30d";"90d";"180d";Never
type KeyLifetime string

// Key lifetimes.
const (
	KeyLifetime30Days  KeyLifetime = "30d"
	KeyLifetime90Days  KeyLifetime = "90d"
	KeyLifetime180Days KeyLifetime = "180d"
	KeyLifetimeNever   KeyLifetime = "Never"
)

// SecretKeyRef names one key of a Secret; the field that holds it says in
// which namespace (the hub's own, or the referring object's).
type SecretKeyRef struct {
	// name is the name of the Secret.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`

	// key is the key within the Secret's data.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Key string `json:"key"`
}

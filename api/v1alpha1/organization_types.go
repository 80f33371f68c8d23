package v1alpha1

import (
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// OrganizationName is the only name an Organization may have: the hub serves
// one organization, and a fixed name makes that rule race-free.
const OrganizationName = "default"

// DefaultHubNamespace is the namespace the hub is installed in, by default:
// its own objects live there, and its SpendingCaps cap the organization.
const DefaultHubNamespace = "hub-system"

// Plan is the organization's subscription plan.
// +kubebuilder:validation:Enum=Free;Standard;Enterprise
type Plan string

// Plans.
const (
	PlanFree       Plan = "Free"
	PlanStandard   Plan = "Standard"
	PlanEnterprise Plan = "Enterprise"
)

// OrganizationSpec is what the platform team declares about the organization.
type OrganizationSpec struct {
	// displayName is the organization's name as people read it.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	DisplayName string `json:"displayName,omitempty"`

	// plan is the subscription plan. Some features (SMS alerts) need Enterprise.
	// +optional
	// +kubebuilder:default=Free
	Plan Plan `json:"plan,omitempty"`

	// billing sets when billing cycles start and the currency of every price.
	// +optional
	// +kubebuilder:default={}
	Billing BillingSpec `json:"billing,omitempty"`

	// pricing is the price list the hub uses to turn usage into spend.
	// +optional
	Pricing *PriceList `json:"pricing,omitempty"`

	// security is the organization's security policy.
	// +optional
	// +kubebuilder:default={}
	Security SecurityPolicy `json:"security,omitempty"`
}

// BillingSpec sets the billing cycle and currency.
type BillingSpec struct {
	// cycleStartDay is the day of the month (1 to 28) on which each billing cycle
	// starts, at midnight in timeZone. Days after the 28th are not allowed so that
	// every month has a cycle start.
	// +optional
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=28
	CycleStartDay int32 `json:"cycleStartDay,omitempty"`

	// timeZone is the IANA time zone (for example "Asia/Shanghai") in which
	// billing cycles start.
	// +optional
	// +kubebuilder:default=UTC
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	TimeZone string `json:"timeZone,omitempty"`

	// currency is the ISO 4217 code of every price and spend, such as USD or CNY.
	// +optional
	// +kubebuilder:default=USD
	// +kubebuilder:validation:XValidation:rule="self.matches('^[A-Z]{3}$')",message="must be an ISO 4217 currency code of three capital letters, such as USD or CNY"
	// +kubebuilder:validation:MaxLength=3
	Currency string `json:"currency,omitempty"`
}

// PriceList holds the price of each service. Prices are decimal strings in the
// organization's currency.
type PriceList struct {
	// chat prices text models (chat completions, embeddings) per million tokens.
	// +optional
	Chat *TokenPricing `json:"chat,omitempty"`

	// video prices video generation per minute of generated video.
	// +optional
	Video *VideoPricing `json:"video,omitempty"`

	// fineTuning prices fine-tuning per million training tokens.
	// +optional
	FineTuning *FineTuningPricing `json:"fineTuning,omitempty"`

	// storage prices file storage.
	// +optional
	Storage *StoragePricing `json:"storage,omitempty"`
}

// TokenPricing prices text models by input and output tokens.
type TokenPricing struct {
	// default prices any model not listed in models. Without it, usage of an
	// unlisted model is reported as unpriced rather than silently free.
	// +optional
	Default *TokenPrice `json:"default,omitempty"`

	// models lists per-model prices.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=256
	Models []ModelTokenPrice `json:"models,omitempty"`
}

// TokenPrice is the price of a million input and a million output tokens.
type TokenPrice struct {
	// inputPer1MTokens is the price of one million input (prompt) tokens.
	// +required
	InputPer1MTokens Amount `json:"inputPer1MTokens"`

	// cachedInputPer1MTokens is the price of one million input tokens read
	// from the prompt cache (OpenAI's cached input; Anthropic's cache
	// reads). Unset, cached tokens cost the input price.
	// +optional
	CachedInputPer1MTokens *Amount `json:"cachedInputPer1MTokens,omitempty"`

	// outputPer1MTokens is the price of one million output (completion) tokens.
	// +required
	OutputPer1MTokens Amount `json:"outputPer1MTokens"`
}

// ModelTokenPrice is the token price of one model.
type ModelTokenPrice struct {
	// name is the model name as clients send it, for example "MiniMax-M2".
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	Name string `json:"name"`

	TokenPrice `json:",inline"`
}

// VideoPricing prices video generation.
type VideoPricing struct {
	// defaultPerMinute prices any video model not listed in models.
	// +optional
	DefaultPerMinute *Amount `json:"defaultPerMinute,omitempty"`

	// models lists per-model prices.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=64
	Models []ModelMinutePrice `json:"models,omitempty"`
}

// ModelMinutePrice is the per-minute price of one video model.
type ModelMinutePrice struct {
	// name is the model name as clients send it.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	Name string `json:"name"`

	// perMinute is the price of one minute of generated video.
	// +required
	PerMinute Amount `json:"perMinute"`
}

// FineTuningPricing prices fine-tuning jobs by training tokens.
type FineTuningPricing struct {
	// defaultPer1MTokens prices any base model not listed in models.
	// +optional
	DefaultPer1MTokens *Amount `json:"defaultPer1MTokens,omitempty"`

	// models lists per-base-model prices.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=64
	Models []ModelTrainingPrice `json:"models,omitempty"`
}

// ModelTrainingPrice is the fine-tuning price of one base model.
type ModelTrainingPrice struct {
	// name is the base model name.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	Name string `json:"name"`

	// per1MTokens is the price of one million training tokens.
	// +required
	Per1MTokens Amount `json:"per1MTokens"`
}

// StoragePricing prices file storage.
type StoragePricing struct {
	// perGBMonth is the price of storing one gigabyte (10^9 bytes) for a month.
	// +required
	PerGBMonth Amount `json:"perGBMonth"`
}

// SecurityPolicy is the organization's security policy.
type SecurityPolicy struct {
	// sessionTimeout is how long a dashboard session lasts without activity,
	// between 15m and 8h.
	// +optional
	// +kubebuilder:default="8h"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=16
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+(h|m|s))+$') && duration(self) >= duration('15m') && duration(self) <= duration('8h')",message="must be a duration between 15m and 8h, such as 30m or 4h"
	SessionTimeout *metav1.Duration `json:"sessionTimeout,omitempty"`

	// mfa sets who must use multi-factor authentication.
	// +optional
	MFA *MFAPolicy `json:"mfa,omitempty"`

	// apiKeys limits the lifetime of API keys.
	// +optional
	APIKeys *APIKeyPolicy `json:"apiKeys,omitempty"`

	// ipAllowlist lists the networks from which API keys may be used. Empty
	// means any address.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=256
	IPAllowlist []CIDR `json:"ipAllowlist,omitempty"`

	// sso configures single sign-on for the dashboard.
	// +optional
	SSO *SSOPolicy `json:"sso,omitempty"`

	// usernamePrefix is put before a member's email to make the Kubernetes
	// username that the hub's RBAC bindings name. Set it to the prefix of
	// the cluster's OIDC setup (claimMappings.username.prefix of the API
	// server's authentication configuration, or --oidc-username-prefix),
	// such as "oidc:"; empty means the email itself.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	UsernamePrefix string `json:"usernamePrefix,omitempty"`
}

// MFAEnforcement says who must use multi-factor authentication.
// +kubebuilder:validation:Enum=None;AllMembers;Roles
type MFAEnforcement string

// MFA enforcement modes.
const (
	MFANone       MFAEnforcement = "None"
	MFAAllMembers MFAEnforcement = "AllMembers"
	MFARoles      MFAEnforcement = "Roles"
)

// MFAPolicy sets who must use multi-factor authentication. Admission refuses
// changes to hub resources by the members it covers when they signed in
// without a second factor (reads never reach admission).
// +kubebuilder:validation:XValidation:rule="self.enforcement == 'Roles' ? (has(self.roles) && size(self.roles) > 0) : (!has(self.roles) || size(self.roles) == 0)",message="roles must list at least one role when enforcement is Roles, and must be empty otherwise"
type MFAPolicy struct {
	// enforcement is None, AllMembers, or Roles (only the roles listed in roles).
	// +required
	Enforcement MFAEnforcement `json:"enforcement"`

	// roles lists the roles that must use MFA when enforcement is Roles.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=4
	Roles []Role `json:"roles,omitempty"`
}

// Enforced says whether the policy asks anyone for a second factor; a nil
// policy asks no one.
func (p *MFAPolicy) Enforced() bool { return p != nil && p.Enforcement != MFANone }

// Covers says whether the policy binds a member with the role.
func (p *MFAPolicy) Covers(role Role) bool {
	switch {
	case !p.Enforced():
		return false
	case p.Enforcement == MFAAllMembers:
		return true
	default:
		return slices.Contains(p.Roles, role)
	}
}

// APIKeyPolicy limits the lifetime of API keys.
// +kubebuilder:validation:XValidation:rule="!has(self.maxLifetimeDays) || !has(self.defaultExpiresAfter) || (self.defaultExpiresAfter != 'Never' && (self.defaultExpiresAfter == '30d' ? 30 : (self.defaultExpiresAfter == '90d' ? 90 : 180)) <= self.maxLifetimeDays)",message="defaultExpiresAfter must not exceed maxLifetimeDays (and cannot be Never when a maximum is set)"
type APIKeyPolicy struct {
	// maxLifetimeDays is the longest lifetime, in days, an API key may request.
	// When set, keys that never expire are refused. When absent, any lifetime,
	// including Never, is allowed. At least 30, the shortest key lifetime.
	// +optional
	// +kubebuilder:validation:Minimum=30
	// +kubebuilder:validation:Maximum=3650
	MaxLifetimeDays *int32 `json:"maxLifetimeDays,omitempty"`

	// defaultExpiresAfter is the lifetime given to keys that do not ask for one.
	// +optional
	DefaultExpiresAfter KeyLifetime `json:"defaultExpiresAfter,omitempty"`
}

// SSOPolicy configures single sign-on through one identity provider.
// +kubebuilder:validation:XValidation:rule="has(self.oidc) != has(self.saml)",message="set exactly one of oidc or saml"
type SSOPolicy struct {
	// oidc configures an OpenID Connect provider.
	// +optional
	OIDC *OIDCProvider `json:"oidc,omitempty"`

	// saml configures a SAML 2.0 identity provider.
	// +optional
	SAML *SAMLProvider `json:"saml,omitempty"`

	// jitProvisioning, when set, creates a Member on a person's first sign-in
	// with the given default role. When absent, only invited members may sign in.
	// +optional
	JITProvisioning *JITProvisioning `json:"jitProvisioning,omitempty"`
}

// OIDCProvider is an OpenID Connect identity provider.
type OIDCProvider struct {
	// issuerURL is the provider's issuer, an https URL.
	// +required
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && url(self).getScheme() == 'https'",message="must be an https URL such as https://login.example.com"
	IssuerURL string `json:"issuerURL"`

	// clientID is the client ID registered with the provider.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	ClientID string `json:"clientID"`

	// clientSecretRef names the Secret key, in the hub's namespace, that holds
	// the client secret.
	// +required
	ClientSecretRef SecretKeyRef `json:"clientSecretRef"`

	// claims maps token claims to member attributes.
	// +optional
	// +kubebuilder:default={}
	Claims OIDCClaims `json:"claims,omitempty"`
}

// OIDCClaims names the token claims the hub reads.
type OIDCClaims struct {
	// email is the claim holding the member's email address.
	// +optional
	// +kubebuilder:default=email
	// +kubebuilder:validation:MaxLength=64
	Email string `json:"email,omitempty"`

	// groups is the claim holding the member's groups.
	// +optional
	// +kubebuilder:default=groups
	// +kubebuilder:validation:MaxLength=64
	Groups string `json:"groups,omitempty"`
}

// SAMLProvider is a SAML 2.0 identity provider.
type SAMLProvider struct {
	// metadataURL is where the provider publishes its metadata, an https URL.
	// +required
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && url(self).getScheme() == 'https'",message="must be an https URL such as https://idp.example.com/metadata"
	MetadataURL string `json:"metadataURL"`
}

// JITProvisioning creates members on first sign-in.
type JITProvisioning struct {
	// defaultRole is the role of a member created on first sign-in. Owner
	// cannot be granted this way.
	// +required
	// +kubebuilder:validation:XValidation:rule="self != 'Owner'",message="Owner cannot be granted by just-in-time provisioning; use Admin, Developer or Viewer"
	DefaultRole Role `json:"defaultRole"`
}

// OrganizationStatus is what the hub observed about the organization.
type OrganizationStatus struct {
	// observedGeneration is the spec generation this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions describe the organization's state; Ready comes first.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=16
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// currentCycle is the billing cycle that contains the present moment.
	// +optional
	CurrentCycle *BillingCycle `json:"currentCycle,omitempty"`

	// counts summarises what the organization holds.
	// +optional
	Counts OrganizationCounts `json:"counts,omitempty"`
}

// BillingCycle is a half-open interval [start, end) of time.
type BillingCycle struct {
	// start is the first instant of the cycle.
	// +required
	Start metav1.Time `json:"start"`

	// end is the first instant after the cycle (the start of the next one).
	// +required
	End metav1.Time `json:"end"`
}

// OrganizationCounts summarises what the organization holds.
type OrganizationCounts struct {
	// projects is the number of Projects, archived ones included.
	// +optional
	Projects int32 `json:"projects,omitempty"`

	// archivedProjects is the number of archived Projects.
	// +optional
	ArchivedProjects int32 `json:"archivedProjects,omitempty"`
}

// Organization is the account: plan, billing, prices and security policy. The
// hub serves exactly one, named "default".
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=org
// +kubebuilder:printcolumn:name="Display Name",type=string,JSONPath=`.spec.displayName`
// +kubebuilder:printcolumn:name="Plan",type=string,JSONPath=`.spec.plan`
// +kubebuilder:printcolumn:name="Currency",type=string,JSONPath=`.spec.billing.currency`
// +kubebuilder:printcolumn:name="Cycle Ends",type=string,JSONPath=`.status.currentCycle.end`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="self.metadata.name == 'default'",message="the hub serves one organization, which must be named 'default'; put the organization's name in spec.displayName"
type Organization struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the desired state of the organization.
	// +optional
	// +kubebuilder:default={}
	Spec OrganizationSpec `json:"spec,omitempty"`

	// status is the observed state of the organization.
	// +optional
	Status OrganizationStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// OrganizationList is a list of Organizations.
type OrganizationList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Organization `json:"items"`
}

func init() {
	register(&Organization{}, &OrganizationList{})
}

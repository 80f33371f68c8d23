package v1alpha1

// Condition types. Each states its polarity: "positive" conditions are True when
// all is well, "abnormal-true" conditions are True when something is wrong and
// absent otherwise (the kstatus convention, so Flux and Argo CD health checks
// understand them).
const (
	// ReadyCondition (positive) is True when the object is fully reconciled and
	// doing its job. It is always the first condition in status.
	ReadyCondition = "Ready"

	// StalledCondition (abnormal-true) is True when the controller cannot make
	// progress until the spec or the cluster changes; it stops retrying.
	StalledCondition = "Stalled"

	// NamespaceReadyCondition (positive) is True when a Project's namespace
	// exists and is owned by the Project.
	NamespaceReadyCondition = "NamespaceReady"
)

// Condition reasons. They double as event reasons.
const (
	// ReconciledReason: the object is reconciled and nothing is pending.
	ReconciledReason = "Reconciled"

	// ProgressingReason: the controller is working towards the desired state.
	ProgressingReason = "Progressing"

	// NamespaceCreatedReason: the controller created the Project's namespace.
	NamespaceCreatedReason = "NamespaceCreated"

	// NamespaceConflictReason: a namespace with the Project's name exists but was
	// not created for this Project; the hub never adopts it.
	NamespaceConflictReason = "NamespaceConflict"

	// NamespaceTerminatingReason: the namespace is being deleted, for example
	// left over from an earlier Project with the same name.
	NamespaceTerminatingReason = "NamespaceTerminating"

	// ArchivedReason: the Project is archived; its keys are suspended.
	ArchivedReason = "Archived"

	// DeletingReason: the object is being deleted and waits for what it owns to go.
	DeletingReason = "Deleting"

	// InvalidTimeZoneReason: the Organization's billing time zone is not a known
	// IANA zone on the manager.
	InvalidTimeZoneReason = "InvalidTimeZone"
)

// Annotations and labels the hub reads or writes.
const (
	// ProjectLabel marks a namespace as the namespace of the named Project.
	ProjectLabel = "hub.minimax.io/project"

	// ConfirmDeleteAnnotation must be set to a Project's own name before the
	// Project (and with it its namespace) can be deleted.
	ConfirmDeleteAnnotation = "hub.minimax.io/confirm-delete"

	// ProjectFinalizer keeps a Project until its namespace is gone.
	ProjectFinalizer = "hub.minimax.io/project-namespace"
)

package audit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/minimax/platform-hub/internal/auditlog"
	"github.com/minimax/platform-hub/internal/metrics"
)

// Stamp is what admission knows of a change it let through: who asked for
// it, what it is, and the object's content before and after. It becomes an
// audit entry only once the change is seen stored.
type Stamp struct {
	// Entry is the entry to record; ID and ResourceVersion are set when
	// the change is seen stored. Entry.UID must be set: the API server
	// fills it in before validating admission, for a create too.
	Entry auditlog.Entry
	// Before and After are the Digests of the object before and after the
	// change; Before is empty for a create, After for a delete.
	Before, After string
	// MultiFactor says the actor's sign-in used a second factor.
	MultiFactor bool
}

// Sink takes the entries of stored changes (the Recorder).
type Sink interface {
	Record(auditlog.Entry)
	// Accepting is false while entries could not be kept.
	Accepting() bool
}

// Activity hears who made a stored change, and whether their sign-in used
// a second factor (the Member activity controller).
type Activity interface {
	Seen(user string, multiFactor bool)
}

// Committer turns admission's stamps into audit entries once the API server
// has stored the change: it watches the audited kinds and, for each stored
// create, update or delete, records the stamp that describes it. A request
// that admission allowed but that was never stored (refused by a later
// admission webhook or plugin, lost to an edit conflict, a dry run) leaves
// its stamp unmatched, and the stamp expires. The actor is the one
// admission saw; the result (the object's UID and resource version) is the
// API server's.
//
// Every replica runs one: each matches the stamps of the requests it
// admitted against the changes its cache sees. An entry's ID is made of
// the object's UID and the resource version the change produced, so two
// replicas that both admitted a retried request record one entry.
type Committer struct {
	// Sink takes the entries; nil records none (activity is still heard).
	Sink Sink
	// Activity, when set, hears every stored change's actor.
	Activity Activity
	// Kinds are the audited kinds, one object of each.
	Kinds []client.Object
	// Cache gives the informers the changes are seen in.
	Cache cache.Informers
	// Clock expires stamps; nil is the real clock.
	Clock clock.Clock
	// Expiry is how long a stamp waits for its change; default 2 minutes
	// (the API server gives an admitted request at most a minute).
	Expiry time.Duration
	// MaxStamps bounds the stamps waiting; the oldest go first. Default
	// 10,000.
	MaxStamps int
	Log       logr.Logger

	once   sync.Once
	mu     sync.Mutex
	stamps map[types.UID][]pending
	count  int

	recorded, unconfirmed prometheus.Counter
}

type pending struct {
	Stamp
	at time.Time
}

func (c *Committer) init() {
	c.once.Do(func() {
		if c.Clock == nil {
			c.Clock = clock.RealClock{}
		}
		if c.Expiry <= 0 {
			c.Expiry = 2 * time.Minute
		}
		if c.MaxStamps <= 0 {
			c.MaxStamps = 10_000
		}
		c.stamps = map[types.UID][]pending{}
		c.recorded = prometheus.NewCounter(prometheus.CounterOpts{Name: "hub_audit_changes_total",
			Help: "Changes to hub resources seen stored and recorded in the audit log."})
		c.unconfirmed = prometheus.NewCounter(prometheus.CounterOpts{Name: "hub_audit_unconfirmed_requests_total",
			Help: "Requests admission allowed whose change was never seen stored (refused later, lost to a conflict), so not recorded."})
	})
}

// RegisterMetrics registers hub_audit_changes_total and
// hub_audit_unconfirmed_requests_total with reg.
func (c *Committer) RegisterMetrics(reg prometheus.Registerer) {
	c.init()
	c.recorded, c.unconfirmed = metrics.Register(reg, c.recorded), metrics.Register(reg, c.unconfirmed)
}

// Accepting tells whether entries can be kept: admission refuses changes
// while it is false.
func (c *Committer) Accepting() bool { return c.Sink == nil || c.Sink.Accepting() }

// Stamp keeps what admission saw of a change it allowed, until the change
// is seen stored. A request the API server sends to admission twice (it
// retries an update that met a concurrent write) is kept once.
func (c *Committer) Stamp(s Stamp) {
	c.init()
	c.mu.Lock()
	defer c.mu.Unlock()
	uid := types.UID(s.Entry.UID)
	list := c.stamps[uid]
	for i := range list {
		if same(list[i].Stamp, s) {
			list[i].at = c.Clock.Now()
			return
		}
	}
	c.stamps[uid] = append(list, pending{Stamp: s, at: c.Clock.Now()})
	c.count++
	if c.count > c.MaxStamps {
		c.dropOldest()
	}
}

func same(a, b Stamp) bool {
	return a.Entry.Action == b.Entry.Action && a.Before == b.Before && a.After == b.After && a.Entry.Actor == b.Entry.Actor
}

// NeedLeaderElection is false: every replica serves admission, and
// commits the stamps of the requests it admitted.
func (c *Committer) NeedLeaderElection() bool { return false }

// Start watches the audited kinds and expires stamps until ctx ends.
func (c *Committer) Start(ctx context.Context) error {
	c.init()
	for _, obj := range c.Kinds {
		inf, err := c.Cache.GetInformer(ctx, obj)
		if err != nil {
			return fmt.Errorf("watching %T for the audit log: %w", obj, err)
		}
		if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
			AddFunc:    func(o any) { c.created(o) },
			UpdateFunc: func(old, o any) { c.updated(old, o) },
			DeleteFunc: func(o any) { c.deleted(o) },
		}); err != nil {
			return fmt.Errorf("watching %T for the audit log: %w", obj, err)
		}
	}
	wait.UntilWithContext(ctx, func(context.Context) { c.expire() }, c.Expiry/4)
	return nil
}

func (c *Committer) created(o any) {
	if obj, ok := o.(client.Object); ok {
		c.commit(obj, func(s Stamp) bool { return s.Entry.Action == auditlog.ActionCreate })
	}
}

func (c *Committer) updated(oldObj, o any) {
	old, ok1 := oldObj.(client.Object)
	obj, ok2 := o.(client.Object)
	if !ok1 || !ok2 {
		return
	}
	if old.GetDeletionTimestamp() == nil && obj.GetDeletionTimestamp() != nil {
		// A delete that waits on finalizers is stored as a deletion
		// timestamp: the request succeeded.
		c.commit(obj, func(s Stamp) bool { return s.Entry.Action == auditlog.ActionDelete })
	}
	before, after := Digest(old), Digest(obj)
	if before == after {
		return // status, or what the API server maintains
	}
	c.commit(obj, func(s Stamp) bool {
		return s.Entry.Action == auditlog.ActionUpdate && s.Before == before && s.After == after
	})
}

func (c *Committer) deleted(o any) {
	if tomb, ok := o.(toolscache.DeletedFinalStateUnknown); ok {
		o = tomb.Obj
	}
	if obj, ok := o.(client.Object); ok {
		c.commit(obj, func(s Stamp) bool { return s.Entry.Action == auditlog.ActionDelete })
	}
}

// commit records the newest stamp of obj that describes the change seen,
// and forgets the others that do (duplicates, or requests that met the
// same end and were refused: the newest is the one that was stored, since
// a later request from the same state would have changed nothing).
func (c *Committer) commit(obj client.Object, describes func(Stamp) bool) {
	c.mu.Lock()
	var match *pending
	list := c.stamps[obj.GetUID()]
	kept := list[:0]
	for i := range list {
		p := list[i]
		if !describes(p.Stamp) {
			kept = append(kept, p)
			continue
		}
		if match != nil && match.at.After(p.at) {
			continue
		}
		match = &p
	}
	c.count -= len(list) - len(kept)
	if len(kept) == 0 {
		delete(c.stamps, obj.GetUID())
	} else {
		c.stamps[obj.GetUID()] = kept
	}
	c.mu.Unlock()
	if match == nil {
		return
	}
	e := match.Entry
	e.ResourceVersion = obj.GetResourceVersion()
	e.ID = entryID(e)
	if c.Sink != nil {
		c.Sink.Record(e)
		c.recorded.Inc()
	}
	if c.Activity != nil {
		c.Activity.Seen(e.Actor, match.MultiFactor)
	}
}

// entryID identifies a stored change: the object (by UID, so that a
// re-created object is another) and the resource version the change
// produced. A delete happens once to an object, whatever version it was
// seen at.
func entryID(e auditlog.Entry) string {
	h := sha256.New()
	version := e.ResourceVersion
	if e.Action == auditlog.ActionDelete {
		version = ""
	}
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%s", e.Kind, e.UID, e.Action, version)
	return hex.EncodeToString(h.Sum(nil))
}

// expire forgets the stamps whose change was not seen in time.
func (c *Committer) expire() {
	c.mu.Lock()
	defer c.mu.Unlock()
	cutoff := c.Clock.Now().Add(-c.Expiry)
	for uid, list := range c.stamps {
		kept := list[:0]
		for _, p := range list {
			if p.at.After(cutoff) {
				kept = append(kept, p)
				continue
			}
			c.unconfirmed.Inc()
			c.count--
			c.Log.V(1).Info("An admitted change was not stored; it is not recorded", "kind", p.Entry.Kind,
				"name", p.Entry.Name, "action", p.Entry.Action, "actor", p.Entry.Actor)
		}
		if len(kept) == 0 {
			delete(c.stamps, uid)
		} else {
			c.stamps[uid] = kept
		}
	}
}

// dropOldest forgets the oldest stamp, to bound memory; it is counted as
// unconfirmed. Called with c.mu held.
func (c *Committer) dropOldest() {
	var oldestUID types.UID
	oldest := -1
	var at time.Time
	for uid, list := range c.stamps {
		for i, p := range list {
			if oldest < 0 || p.at.Before(at) {
				oldestUID, oldest, at = uid, i, p.at
			}
		}
	}
	if oldest < 0 {
		return
	}
	list := c.stamps[oldestUID]
	c.stamps[oldestUID] = append(list[:oldest], list[oldest+1:]...)
	if len(c.stamps[oldestUID]) == 0 {
		delete(c.stamps, oldestUID)
	}
	c.count--
	c.unconfirmed.Inc()
}

// Digest is the SHA-256 (hex) of what a request can change in obj: all
// but its status and the metadata the API server maintains (UID, resource
// version, generation, timestamps, managed fields). Two objects with the
// same Digest hold the same spec, labels, annotations, finalizers and
// owner references.
func Digest(obj client.Object) string {
	raw, err := json.Marshal(obj)
	if err != nil {
		return ""
	}
	var m map[string]any
	if json.Unmarshal(raw, &m) != nil {
		return ""
	}
	delete(m, "status")
	delete(m, "apiVersion")
	delete(m, "kind")
	if md, ok := m["metadata"].(map[string]any); ok {
		kept := map[string]any{}
		for _, k := range []string{"name", "namespace", "labels", "annotations", "finalizers", "ownerReferences"} {
			if v, ok := md[k]; ok {
				kept[k] = v
			}
		}
		m["metadata"] = kept
	}
	out, _ := json.Marshal(m) // map keys come out sorted
	sum := sha256.Sum256(out)
	return hex.EncodeToString(sum[:])
}

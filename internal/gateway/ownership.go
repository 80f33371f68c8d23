package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"k8s.io/utils/lru"

	"github.com/minimax/platform-hub/internal/objects"
	"github.com/minimax/platform-hub/internal/serverclient"
)

// ErrClaimConflict is returned when an object the gateway was to record as
// a project's is recorded as another's.
var ErrClaimConflict = errors.New("the object belongs to another project")

// Owners asks the usage server which project owns upstream objects, and
// records the objects projects create. An object's owner never changes, so
// answers are cached (owned objects only: an object unknown now may be
// recorded a moment later by another replica).
type Owners struct {
	// URL is the usage server's base URL.
	URL    string
	Client *http.Client
	// Token returns the bearer token to send.
	Token func() (string, error)

	cache *lru.Cache
}

// ownerCacheSize bounds the cache of owners: a few MB.
const ownerCacheSize = 100_000

// NewOwners returns an Owners of the server at url.
func NewOwners(url string, c *http.Client, token func() (string, error)) *Owners {
	return &Owners{URL: strings.TrimSuffix(url, "/"), Client: c, Token: token, cache: lru.New(ownerCacheSize)}
}

// Lookup returns the owner of each of ids (of one kind) that is recorded.
func (o *Owners) Lookup(ctx context.Context, kind ObjectKind, ids []string) (map[string]string, error) {
	owners := make(map[string]string, len(ids))
	var ask []string
	seen := make(map[string]bool, len(ids))
	for _, id := range ids {
		if seen[id] {
			continue
		}
		seen[id] = true
		if p, ok := o.cache.Get(cacheKey(kind, id)); ok {
			owners[id] = p.(string)
		} else {
			ask = append(ask, id)
		}
	}
	for len(ask) > 0 {
		chunk := ask[:min(len(ask), 1000)]
		ask = ask[len(chunk):]
		var answer struct {
			Owners map[string]string `json:"owners"`
		}
		if err := o.post(ctx, "/v1/objects/owners", map[string]any{"kind": kind, "ids": chunk}, &answer); err != nil {
			return nil, err
		}
		for id, p := range answer.Owners {
			owners[id] = p
			o.cache.Add(cacheKey(kind, id), p)
		}
	}
	return owners, nil
}

// Claim records objects as their projects', trying three times over about
// a second. It fails with ErrClaimConflict when one is another project's.
func (o *Owners) Claim(ctx context.Context, claims []objects.Object) error {
	var err error
	for attempt, wait := 0, 100*time.Millisecond; attempt < 3; attempt, wait = attempt+1, wait*3 {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return errors.Join(err, ctx.Err())
			case <-time.After(wait):
			}
		}
		if err = o.post(ctx, "/v1/objects", map[string]any{"objects": claims}, nil); err == nil || errors.Is(err, ErrClaimConflict) {
			break
		}
	}
	if err != nil {
		return err
	}
	for _, obj := range claims {
		o.cache.Add(cacheKey(ObjectKind(obj.Kind), obj.ID), obj.Project)
	}
	return nil
}

func (o *Owners) post(ctx context.Context, path string, body, into any) error {
	resp, err := serverclient.Post(ctx, o.Client, o.URL+path, o.Token, body)
	if err != nil {
		return fmt.Errorf("asking the usage server about upstream objects: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	switch {
	case resp.StatusCode == http.StatusConflict:
		return fmt.Errorf("%w: %s", ErrClaimConflict, answer)
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("the usage server answered %s: %s", resp.Status, answer)
	case into != nil:
		return json.Unmarshal(answer, into)
	}
	return nil
}

func cacheKey(kind ObjectKind, id string) string { return string(kind) + "\x00" + id }

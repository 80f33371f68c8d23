package gateway

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/minimax/platform-hub/internal/objects"
)

// ObjectKind is a kind of object that projects create upstream through the
// gateway. The upstream is shared by every project (the platform calls it
// with one key), so the hub records whose each object is, and only that
// project can name it.
type ObjectKind string

// Object kinds.
const (
	ObjectFile          ObjectKind = "file"
	ObjectFineTuningJob ObjectKind = "fine_tuning_job"
	ObjectVideoTask     ObjectKind = "video_task"
	ObjectResponse      ObjectKind = "response"
)

// objectNames are what OpenAI's errors call each kind ("No such File
// object: file-abc").
var objectNames = map[ObjectKind]string{ObjectFile: "File", ObjectFineTuningJob: "FineTuningJob",
	ObjectVideoTask: "VideoTask", ObjectResponse: "Response"}

// ObjectRule says how a route touches the objects projects own upstream.
type ObjectRule struct {
	// Names lists where the request names objects: a {name} segment of the
	// path, or a query parameter. Each must be the caller's project's.
	Names []ObjectName `json:"names,omitempty"`
	// Creates is the kind of object a successful answer creates; its ID is
	// the answer's top-level IDField ("id" when empty). The object becomes
	// the caller's project's before the answer is passed on.
	Creates ObjectKind `json:"creates,omitempty"`
	IDField string     `json:"idField,omitempty"`
	// Lists is the kind of object a successful answer lists in data: only
	// the caller's project's are passed on.
	Lists ObjectKind `json:"lists,omitempty"`
	// Yields are top-level fields of a successful answer that name objects
	// (an ID, or a list of IDs), which become the caller's: a finished
	// video task names the file of its video, a fine-tuning job its result
	// files.
	Yields []ObjectField `json:"yields,omitempty"`
}

// Where an ObjectName is.
const (
	InPath  = "path"
	InQuery = "query"
)

// ObjectName is where a request names an object.
type ObjectName struct {
	Kind ObjectKind `json:"kind"`
	// In is path or query.
	In string `json:"in"`
	// Name is the path segment's name (without braces) or the parameter's.
	Name string `json:"name"`
}

// ObjectField is a top-level field of an answer that holds an object's ID.
type ObjectField struct {
	Kind  ObjectKind `json:"kind"`
	Field string     `json:"field"`
}

// bodyReferences are the keys that name objects wherever they appear in a
// JSON request body, as a string or an array of strings: a file in a chat
// message, a code interpreter's files, a fine-tuning job's data, the
// response a new one continues.
var bodyReferences = map[string]ObjectKind{
	"file_id": ObjectFile, "file_ids": ObjectFile, "training_file": ObjectFile, "validation_file": ObjectFile,
	"previous_response_id": ObjectResponse,
}

func (k ObjectKind) check() error {
	if _, ok := objectNames[k]; !ok {
		return fmt.Errorf("object kind must be file, fine_tuning_job, video_task or response, not %q", k)
	}
	return nil
}

// check checks a rule against its route's path.
func (o *ObjectRule) check(segments []string) error {
	for _, n := range o.Names {
		if err := n.Kind.check(); err != nil {
			return err
		}
		switch {
		case n.In == InPath && !slices.Contains(segments, "{"+n.Name+"}"):
			return fmt.Errorf("objects.names: the path has no {%s} segment", n.Name)
		case n.In != InPath && n.In != InQuery:
			return fmt.Errorf("objects.names: in must be path or query, not %q", n.In)
		}
	}
	for _, k := range []ObjectKind{o.Creates, o.Lists} {
		if k != "" {
			if err := k.check(); err != nil {
				return err
			}
		}
	}
	for _, y := range o.Yields {
		if err := y.Kind.check(); err != nil {
			return err
		}
	}
	return nil
}

// objectRef is an object a request names.
type objectRef struct {
	kind ObjectKind
	id   string
}

// namedObjects lists the objects a request names: in its path and query,
// as its route says, and anywhere in its JSON body.
func (c *call) namedObjects(r *http.Request) ([]objectRef, error) {
	var refs []objectRef
	if rule := c.route.Objects; rule != nil {
		query, _ := url.ParseQuery(c.query) // as forwarded
		for _, n := range rule.Names {
			// Every value of a repeated parameter: readers disagree on
			// which one counts.
			ids := query[n.Name]
			if n.In == InPath {
				ids = []string{c.route.param(r.URL.Path, n.Name)}
			}
			for _, id := range ids {
				if id != "" {
					refs = append(refs, objectRef{n.Kind, id})
				}
			}
		}
	}
	inBody, err := bodyObjects(c.body)
	return append(refs, inBody...), err
}

// param returns the segment of path that the route's {name} matches.
func (r *Route) param(path, name string) string {
	parts := strings.Split(strings.TrimPrefix(path, "/"), "/")
	if i := slices.Index(r.segments, "{"+name+"}"); i >= 0 && i < len(parts) {
		return parts[i]
	}
	return ""
}

// maxReferences bounds the objects one request may name.
const maxReferences = 256

// bodyObjects finds the values of bodyReferences keys at any depth of a
// JSON body: every occurrence, keys matched whatever their case or escapes,
// so that a key repeated, spelled "Training_File" or escaped cannot hide an
// object from the check while the upstream reads it. A body that does not
// decode is an error: what cannot be checked is not passed on. Bodies that
// mention none of the keys (and hold no escape) are not read further.
func bodyObjects(body []byte) ([]objectRef, error) {
	lower := bytes.ToLower(body)
	mentions := bytes.IndexByte(body, '\\') >= 0
	for key := range bodyReferences {
		mentions = mentions || bytes.Contains(lower, []byte(key))
	}
	if !mentions {
		return nil, nil
	}
	w := &referenceWalker{}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) && len(w.stack) == 0 {
			return w.refs, nil
		}
		if err != nil {
			return nil, err
		}
		w.token(tok)
		if len(w.refs) > maxReferences {
			return nil, fmt.Errorf("the request names more than %d objects", maxReferences)
		}
	}
}

// referenceWalker follows the tokens of a JSON document and collects the
// values of bodyReferences keys: a string, or the strings of an array.
type referenceWalker struct {
	stack []walkFrame
	// pending is the kind of the key just read, if it names objects.
	pending ObjectKind
	refs    []objectRef
}

type walkFrame struct {
	// object: an object, whose next string is a key when wantKey is set.
	object, wantKey bool
	// kind: an array of IDs of this kind (the value of file_ids, say).
	kind ObjectKind
}

func (w *referenceWalker) token(tok json.Token) {
	top := len(w.stack) - 1
	if key, ok := tok.(string); ok && top >= 0 && w.stack[top].object && w.stack[top].wantKey {
		w.pending = bodyReferences[strings.ToLower(key)]
		w.stack[top].wantKey = false
		return
	}
	switch v := tok.(type) {
	case json.Delim:
		if w.delim(v) {
			return
		}
	case string:
		kind := w.pending
		if top >= 0 && !w.stack[top].object {
			kind = w.stack[top].kind
		}
		if kind != "" && v != "" {
			w.refs = append(w.refs, objectRef{kind, v})
		}
	}
	w.valueEnded()
}

// delim opens or closes a container; it tells whether it opened one.
func (w *referenceWalker) delim(d json.Delim) bool {
	if d == '{' || d == '[' {
		f := walkFrame{object: d == '{', wantKey: d == '{'}
		if d == '[' {
			f.kind = w.pending
		}
		w.stack = append(w.stack, f)
		w.pending = ""
		return true
	}
	w.stack = w.stack[:len(w.stack)-1]
	return false
}

// valueEnded: an object's next string is a key again.
func (w *referenceWalker) valueEnded() {
	w.pending = ""
	if top := len(w.stack) - 1; top >= 0 && w.stack[top].object {
		w.stack[top].wantKey = true
	}
}

// checkObjects refuses a request that names an object its caller's project
// does not own, with the 404 the upstream would give for an object that
// does not exist: another project's objects are not there for it. An object
// the hub has no record of (made before the gateway recorded owners, or
// around it) is nobody's, and refused too.
func (g *Gateway) checkObjects(ctx context.Context, r *http.Request, c *call) verdict {
	if g.Owners == nil {
		return verdict{}
	}
	refs, err := c.namedObjects(r)
	if err != nil {
		return refuse(http.StatusBadRequest, reasonBadRequest, "invalid_request_error", "invalid_request_body",
			"The request body cannot be checked for the objects it names: "+err.Error())
	}
	if len(refs) == 0 {
		return verdict{}
	}
	byKind := map[ObjectKind][]string{}
	for _, ref := range refs {
		byKind[ref.kind] = append(byKind[ref.kind], ref.id)
	}
	for kind, ids := range byKind {
		owners, err := g.Owners.Lookup(ctx, kind, ids)
		if err != nil {
			return refuse(http.StatusServiceUnavailable, reasonOwnerUnknown, "api_error", "service_unavailable",
				fmt.Sprintf("The gateway cannot tell whose %s %s is right now; retry later.", kind, ids[0]))
		}
		for _, id := range ids {
			if owners[id] != c.key.Namespace {
				return refuse(http.StatusNotFound, reasonNotOwned, "invalid_request_error", "object_not_found",
					fmt.Sprintf("No such %s object: %s", objectNames[kind], id))
			}
		}
	}
	return verdict{}
}

// Errors of applying a route's object rule to an answer.
var (
	// errObjectRecord: the upstream made an object, but the gateway could
	// not record it as the caller's project's.
	errObjectRecord = errors.New("the object could not be recorded as the project's")
	// errObjectAnswer: the answer could not be read for its objects.
	errObjectAnswer = errors.New("the upstream's answer could not be read for its objects")
)

// maxObjectAnswer bounds an answer the gateway reads whole to record or
// filter objects: lists of files and jobs, a created object.
const maxObjectAnswer = 16 << 20

// objectAnswer applies a route's object rule to a successful JSON answer
// (read whole, decompressed) before it is passed on: created and yielded
// objects become the caller's project's, and lists keep only that project's
// objects. It returns the body to pass on.
func (g *Gateway) objectAnswer(ctx context.Context, resp *http.Response, c *call, body []byte) ([]byte, error) {
	rule := c.route.Objects
	if rule == nil || g.Owners == nil {
		return body, nil
	}
	project := c.key.Namespace
	var claims []objects.Object
	if rule.Creates != "" {
		field := rule.IDField
		if field == "" {
			field = "id"
		}
		if id := topLevelString(body, field); id != "" {
			claims = append(claims, objects.Object{Kind: string(rule.Creates), ID: id, Project: project})
		}
	}
	for _, y := range rule.Yields {
		for _, id := range topLevelStrings(body, y.Field) {
			claims = append(claims, objects.Object{Kind: string(y.Kind), ID: id, Project: project})
		}
	}
	if len(claims) > 0 {
		if err := g.Owners.Claim(ctx, claims); err != nil {
			return nil, fmt.Errorf("%w: %s %s: %w", errObjectRecord, claims[0].Kind, claims[0].ID, err)
		}
	}
	if rule.Lists == "" {
		return body, nil
	}
	body, err := g.ownList(ctx, resp, body, rule.Lists, project)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errObjectAnswer, err)
	}
	return body, nil
}

// touchesObjects tells whether a route's answers need its object rule.
func (r *Route) touchesObjects() bool {
	o := r.Objects
	return r.Usage == UsageFineTuningJob || o != nil && (o.Creates != "" || o.Lists != "" || len(o.Yields) > 0)
}

// readAnswer reads an answer body whole, decompressing gzip.
func readAnswer(resp *http.Response) ([]byte, error) {
	defer func() { _ = resp.Body.Close() }()
	r := io.LimitReader(resp.Body, maxObjectAnswer+1)
	if ce := strings.ToLower(strings.TrimSpace(resp.Header.Get("Content-Encoding"))); ce == encodingGzip || ce == "x-"+encodingGzip {
		zr, err := gzip.NewReader(r)
		if err != nil {
			return nil, err
		}
		r = io.LimitReader(zr, maxObjectAnswer+1)
	}
	body, err := io.ReadAll(r)
	if err == nil && len(body) > maxObjectAnswer {
		err = fmt.Errorf("the answer is larger than %d bytes", maxObjectAnswer)
	}
	return body, err
}

// topLevelStrings are the strings at a top-level key of a JSON object: one
// string, or an array's.
func topLevelStrings(body []byte, key string) []string {
	var doc map[string]json.RawMessage
	if json.Unmarshal(body, &doc) != nil {
		return nil
	}
	var one string
	if json.Unmarshal(doc[key], &one) == nil {
		if one == "" {
			return nil
		}
		return []string{one}
	}
	var many []string
	_ = json.Unmarshal(doc[key], &many)
	return slices.DeleteFunc(many, func(s string) bool { return s == "" })
}

// topLevelString is the string at a top-level key of a JSON object, or "".
func topLevelString(body []byte, key string) string {
	var doc map[string]json.RawMessage
	if json.Unmarshal(body, &doc) != nil {
		return ""
	}
	var s string
	_ = json.Unmarshal(doc[key], &s)
	return s
}

// maxListPages bounds how many pages of a list the gateway reads to find
// some of the caller's objects.
const maxListPages = 10

// ownList keeps in a list answer ({"data": [{"id": …}, …], "has_more",
// "first_id", "last_id"}) only the objects the project owns. When a page
// holds none but there are more, the gateway reads the next pages itself
// (after the page's last ID, up to maxListPages), so that a client paging
// with the last ID it got is never handed an empty page too early.
func (g *Gateway) ownList(ctx context.Context, resp *http.Response, body []byte, kind ObjectKind, project string) ([]byte, error) {
	var page map[string]json.RawMessage
	if err := json.Unmarshal(body, &page); err != nil {
		return nil, fmt.Errorf("reading a list answer: %w", err)
	}
	kept := []json.RawMessage{}
	for pages := 1; ; pages++ {
		owned, lastID, err := g.ownedItems(ctx, page, kind, project)
		if err != nil {
			return nil, err
		}
		kept = append(kept, owned...)
		var more bool
		_ = json.Unmarshal(page["has_more"], &more)
		if len(kept) > 0 || !more || lastID == "" || pages >= maxListPages {
			break
		}
		if page, err = g.nextPage(ctx, resp.Request, lastID); err != nil {
			return nil, err
		}
	}
	page["data"], _ = json.Marshal(kept)
	for key, i := range map[string]int{"first_id": 0, "last_id": len(kept) - 1} {
		if _, ok := page[key]; ok {
			page[key] = json.RawMessage(jsonNull)
			if len(kept) > 0 {
				page[key], _ = json.Marshal(topLevelString(kept[i], "id"))
			}
		}
	}
	return json.Marshal(page)
}

// ownedItems returns the items of a list page that project owns, and the
// ID of the page's last item.
func (g *Gateway) ownedItems(ctx context.Context, page map[string]json.RawMessage, kind ObjectKind, project string) ([]json.RawMessage, string, error) {
	var data []json.RawMessage
	if err := json.Unmarshal(page["data"], &data); err != nil {
		return nil, "", fmt.Errorf("reading a list answer's data: %w", err)
	}
	ids := make([]string, len(data))
	for i, item := range data {
		ids[i] = topLevelString(item, "id")
	}
	owners, err := g.Owners.Lookup(ctx, kind, ids)
	if err != nil {
		return nil, "", err
	}
	var owned []json.RawMessage
	for i, item := range data {
		if ids[i] != "" && owners[ids[i]] == project {
			owned = append(owned, item)
		}
	}
	last := ""
	if len(ids) > 0 {
		last = ids[len(ids)-1]
	}
	return owned, last, nil
}

// nextPage asks the upstream for the page of a list after an ID.
func (g *Gateway) nextPage(ctx context.Context, prev *http.Request, after string) (map[string]json.RawMessage, error) {
	req := prev.Clone(ctx)
	q := req.URL.Query()
	q.Set("after", after)
	req.URL.RawQuery = q.Encode()
	req.Header.Del("Accept-Encoding") // the transport asks for gzip and decompresses
	resp, err := g.proxy.Transport.RoundTrip(req)
	if err != nil {
		return nil, fmt.Errorf("reading the next page of a list: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		_ = resp.Body.Close()
		return nil, fmt.Errorf("reading the next page of a list: the upstream answered %s", resp.Status)
	}
	body, err := readAnswer(resp)
	if err != nil {
		return nil, err
	}
	var page map[string]json.RawMessage
	return page, json.Unmarshal(body, &page)
}

// jsonAnswer tells whether an answer is JSON, not an event stream: by its
// Content-Type, or when it has none, by whether the call asked to stream.
func jsonAnswer(resp *http.Response, c *call) bool {
	media, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	switch media {
	case "text/event-stream":
		return false
	case "":
		return !c.stream
	}
	return true
}

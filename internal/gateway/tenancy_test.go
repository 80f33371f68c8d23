package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/minimax/platform-hub/internal/pricing"
	"github.com/minimax/platform-hub/internal/usage"
)

// platform is a stateful upstream on loopback that keeps files, fine-tuning
// jobs, video tasks and responses for everyone, as the real platform does
// for the one key the gateway calls it with. Lists come in ID order, paged
// by limit and after, as OpenAI's do.
type platform struct {
	mu      sync.Mutex
	next    int
	files   []string
	jobs    []string
	tasks   map[string]string // task ID -> the file of its video
	results map[string]string // job ID -> its result file
	answers map[string]bool   // stored responses
}

func (p *platform) newID(prefix string) string {
	p.next++
	return fmt.Sprintf("%s-%04d", prefix, p.next)
}

func (p *platform) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var body map[string]any
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		_ = json.NewDecoder(r.Body).Decode(&body)
	}
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/v1/"), "/")
	switch parts[0] {
	case "files":
		p.filesAPI(w, r, parts)
	case "fine_tuning":
		p.jobsAPI(w, r, parts, body)
	case "video_generation", "query":
		p.videoAPI(w, r)
	case "responses":
		p.responsesAPI(w, r, parts)
	case "chat":
		reply(w, http.StatusOK, map[string]any{"id": "c", "usage": map[string]any{"prompt_tokens": 1, "completion_tokens": 1}})
	default:
		reply(w, http.StatusNotFound, map[string]any{"error": map[string]any{"message": "unknown"}})
	}
}

func reply(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func missing(w http.ResponseWriter, what, id string) {
	reply(w, http.StatusNotFound, map[string]any{"error": map[string]any{"message": "No such " + what + " object: " + id}})
}

func (p *platform) filesAPI(w http.ResponseWriter, r *http.Request, parts []string) {
	switch {
	case r.Method == http.MethodPost && len(parts) == 1:
		id := p.newID("file")
		p.files = append(p.files, id)
		reply(w, http.StatusOK, map[string]any{"id": id, "object": "file", "purpose": r.FormValue("purpose")})
	case len(parts) == 1:
		reply(w, http.StatusOK, page(p.files, r, "file"))
	case parts[1] == "retrieve":
		if id := r.URL.Query().Get("file_id"); !slices.Contains(p.files, id) {
			missing(w, "File", id)
			return
		}
		reply(w, http.StatusOK, map[string]any{"file": map[string]any{"file_id": r.URL.Query().Get("file_id")}})
	case !slices.Contains(p.files, parts[1]):
		missing(w, "File", parts[1])
	case r.Method == http.MethodDelete:
		p.files = slices.DeleteFunc(p.files, func(f string) bool { return f == parts[1] })
		reply(w, http.StatusOK, map[string]any{"id": parts[1], "deleted": true})
	default:
		reply(w, http.StatusOK, map[string]any{"id": parts[1], "object": "file"})
	}
}

func (p *platform) jobsAPI(w http.ResponseWriter, r *http.Request, parts []string, body map[string]any) {
	switch {
	case r.Method == http.MethodPost && len(parts) == 2:
		if file, _ := body["training_file"].(string); !slices.Contains(p.files, file) {
			missing(w, "File", file)
			return
		}
		id := p.newID("ftjob")
		p.jobs = append(p.jobs, id)
		reply(w, http.StatusOK, map[string]any{"id": id, "object": "fine_tuning.job", "training_file": body["training_file"]})
	case len(parts) == 2:
		reply(w, http.StatusOK, page(p.jobs, r, "fine_tuning.job"))
	case !slices.Contains(p.jobs, parts[2]):
		missing(w, "FineTuningJob", parts[2])
	default:
		// Read, the job has succeeded: it trained 5,000 tokens and wrote a
		// result file.
		if p.results[parts[2]] == "" {
			p.results[parts[2]] = p.newID("file")
			p.files = append(p.files, p.results[parts[2]])
		}
		reply(w, http.StatusOK, map[string]any{"id": parts[2], "object": "fine_tuning.job", "model": "MiniMax-M2",
			"status": "succeeded", "trained_tokens": 5000, "finished_at": 1767225600, "result_files": []string{p.results[parts[2]]}})
	}
}

func (p *platform) videoAPI(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost {
		task := p.newID("task")
		p.tasks[task] = ""
		reply(w, http.StatusOK, map[string]any{"task_id": task, "base_resp": map[string]any{"status_code": 0}})
		return
	}
	task := r.URL.Query().Get("task_id")
	file, ok := p.tasks[task]
	if !ok {
		missing(w, "VideoTask", task)
		return
	}
	if file == "" {
		file = p.newID("file")
		p.files = append(p.files, file)
		p.tasks[task] = file
	}
	reply(w, http.StatusOK, map[string]any{"task_id": task, "status": "Success", "file_id": file, "base_resp": map[string]any{"status_code": 0}})
}

func (p *platform) responsesAPI(w http.ResponseWriter, r *http.Request, parts []string) {
	switch {
	case r.Method == http.MethodPost && len(parts) == 1:
		id := p.newID("resp")
		p.answers[id] = true
		reply(w, http.StatusOK, map[string]any{"id": id, "object": "response", "usage": map[string]any{"input_tokens": 3, "output_tokens": 4}})
	case !p.answers[parts[1]]:
		missing(w, "Response", parts[1])
	default:
		reply(w, http.StatusOK, map[string]any{"id": parts[1], "object": "response"})
	}
}

// page is a page of an OpenAI list: limit items after the ID after.
func page(ids []string, r *http.Request, object string) map[string]any {
	limit, err := strconv.Atoi(r.URL.Query().Get("limit"))
	if err != nil || limit <= 0 {
		limit = 100
	}
	start := 0
	if after := r.URL.Query().Get("after"); after != "" {
		start = slices.Index(ids, after) + 1
	}
	end := min(start+limit, len(ids))
	data := make([]map[string]any, 0, end-start)
	for _, id := range ids[start:end] {
		data = append(data, map[string]any{"id": id, "object": object})
	}
	out := map[string]any{"object": "list", "data": data, "has_more": end < len(ids)}
	if object == "file" {
		out["first_id"], out["last_id"] = nil, nil
		if len(data) > 0 {
			out["first_id"], out["last_id"] = data[0]["id"], data[len(data)-1]["id"]
		}
	}
	return out
}

// tenant calls a gateway with one project's key.
type tenant struct {
	g    Gomega
	base string
	key  string
}

func (c tenant) do(method, path string, body any) answer {
	var reader io.Reader
	contentType := ""
	switch b := body.(type) {
	case nil:
	case *multipart.Writer:
		panic("use upload")
	default:
		raw, err := json.Marshal(b)
		c.g.Expect(err).NotTo(HaveOccurred())
		reader, contentType = bytes.NewReader(raw), "application/json"
	}
	req, err := http.NewRequest(method, c.base+path, reader)
	c.g.Expect(err).NotTo(HaveOccurred())
	req.Header.Set("Authorization", "Bearer "+c.key)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	return c.send(req)
}

func (c tenant) upload(name string) string {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	_ = mw.WriteField("purpose", "fine-tune")
	fw, _ := mw.CreateFormFile("file", name)
	_, _ = io.WriteString(fw, `{"messages":[]}`+"\n")
	_ = mw.Close()
	req, err := http.NewRequest(http.MethodPost, c.base+"/v1/files", &buf)
	c.g.Expect(err).NotTo(HaveOccurred())
	req.Header.Set("Authorization", "Bearer "+c.key)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	a := c.send(req)
	c.g.Expect(a.status).To(Equal(http.StatusOK), string(a.body))
	return a.field("id")
}

func (c tenant) send(req *http.Request) answer {
	resp, err := http.DefaultClient.Do(req)
	c.g.Expect(err).NotTo(HaveOccurred())
	defer func() { _ = resp.Body.Close() }()
	raw, err := io.ReadAll(resp.Body)
	c.g.Expect(err).NotTo(HaveOccurred())
	return answer{status: resp.StatusCode, header: resp.Header, body: raw}
}

func (a answer) field(name string) string {
	var doc map[string]any
	_ = json.Unmarshal(a.body, &doc)
	s, _ := doc[name].(string)
	return s
}

func (a answer) listIDs() []string {
	var doc struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	_ = json.Unmarshal(a.body, &doc)
	ids := make([]string, 0, len(doc.Data))
	for _, d := range doc.Data {
		ids = append(ids, d.ID)
	}
	return ids
}

// TestProjectsCannotReachEachOthersObjects: two projects share one upstream
// (and its one key). What project A makes through the gateway (files,
// fine-tuning jobs, video tasks and their videos, responses) is A's: B cannot
// read, download, delete, list, cancel or build on any of it, and gets the
// 404 an object that does not exist gets. Objects the hub has no record of
// are nobody's.
func TestProjectsCannotReachEachOthersObjects(t *testing.T) {
	g := NewWithT(t)
	up := &platform{tasks: map[string]string{}, answers: map[string]bool{}, results: map[string]string{}}
	upstream := httptest.NewServer(up)
	defer upstream.Close()
	base := startGateway(t, g, upstream.URL)
	_, keyA := issueKey(g, "gw-tenant-a", nil)
	_, keyB := issueKey(g, "gw-tenant-b", nil)
	a, b := tenant{g, base, keyA}, tenant{g, base, keyB}
	notFound := func(got answer, what string) {
		t.Helper()
		g.Expect(got.status).To(Equal(http.StatusNotFound), "%s: %s", what, got.body)
		g.Expect(got.errorCode()).To(Equal("object_not_found"), what)
		g.Expect(got.errorMessage()).To(HavePrefix("No such "), what)
	}

	// Files.
	fileA := a.upload("a.jsonl")
	fileA2 := a.upload("a2.jsonl")
	fileB := b.upload("b.jsonl")
	for _, path := range []string{"/v1/files/" + fileA, "/v1/files/" + fileA + "/content", "/v1/files/retrieve?file_id=" + fileA} {
		g.Expect(a.do(http.MethodGet, path, nil).status).To(Equal(http.StatusOK), path)
		notFound(b.do(http.MethodGet, path, nil), "B reads "+path)
	}
	notFound(b.do(http.MethodDelete, "/v1/files/"+fileA, nil), "B deletes A's file")
	g.Expect(b.do(http.MethodGet, "/v1/files/"+fileB+"%2F..%2F"+fileA, nil).status).To(Equal(http.StatusNotFound),
		"an encoded slash is a slash: the path is not the file's")
	notFound(a.do(http.MethodGet, "/v1/files/file-never-made", nil), "an object nobody made through the gateway")
	g.Expect(a.do(http.MethodGet, "/v1/files", nil).listIDs()).To(Equal([]string{fileA, fileA2}))
	g.Expect(b.do(http.MethodGet, "/v1/files", nil).listIDs()).To(Equal([]string{fileB}))
	// Paging one at a time: B's first page would hold only A's files; the
	// gateway reads on until it finds B's.
	paged := b.do(http.MethodGet, "/v1/files?limit=1", nil)
	g.Expect(paged.listIDs()).To(Equal([]string{fileB}))
	g.Expect(paged.field("first_id")).To(Equal(fileB))
	g.Expect(paged.field("last_id")).To(Equal(fileB))

	// Fine-tuning jobs, which name their training file in the body.
	notFound(b.do(http.MethodPost, "/v1/fine_tuning/jobs", map[string]any{"model": "m", "training_file": fileA}), "B trains on A's file")
	job := a.do(http.MethodPost, "/v1/fine_tuning/jobs", map[string]any{"model": "m", "training_file": fileA})
	g.Expect(job.status).To(Equal(http.StatusOK), string(job.body))
	jobA := job.field("id")
	notFound(b.do(http.MethodGet, "/v1/fine_tuning/jobs/"+jobA, nil), "B reads A's job")
	notFound(b.do(http.MethodPost, "/v1/fine_tuning/jobs/"+jobA+"/cancel", nil), "B cancels A's job")
	notFound(b.do(http.MethodGet, "/v1/fine_tuning/jobs/"+jobA+"/events", nil), "B reads A's job events")
	readJob := a.do(http.MethodGet, "/v1/fine_tuning/jobs/"+jobA, nil)
	g.Expect(readJob.status).To(Equal(http.StatusOK))
	var result struct {
		Files []string `json:"result_files"`
	}
	g.Expect(json.Unmarshal(readJob.body, &result)).To(Succeed())
	g.Expect(a.do(http.MethodGet, "/v1/files/"+result.Files[0], nil).status).To(Equal(http.StatusOK), "the job's result file is A's")
	notFound(b.do(http.MethodGet, "/v1/files/"+result.Files[0]+"/content", nil), "B downloads A's result file")
	g.Expect(a.do(http.MethodGet, "/v1/fine_tuning/jobs/"+jobA, nil).status).To(Equal(http.StatusOK), "read again")
	notFound(b.do(http.MethodGet, "/v1/files?after="+fileA, nil), "B pages after A's file")
	g.Expect(a.do(http.MethodGet, "/v1/fine_tuning/jobs", nil).listIDs()).To(Equal([]string{jobA}))
	g.Expect(b.do(http.MethodGet, "/v1/fine_tuning/jobs", nil).listIDs()).To(BeEmpty())

	// The job's training is metered once, at the time it finished, however
	// often the job is read or listed.
	g.Expect(a.do(http.MethodGet, "/v1/fine_tuning/jobs", nil).status).To(Equal(http.StatusOK))
	g.Eventually(func() []usage.Event { return trainingEvents(g, "gw-tenant-a") }, 10*time.Second).Should(HaveLen(1))
	g.Consistently(func() []usage.Event { return trainingEvents(g, "gw-tenant-a") }, 500*time.Millisecond).Should(HaveLen(1))
	training := trainingEvents(g, "gw-tenant-a")[0]
	g.Expect([]any{training.InputTokens, training.Model, training.Time.Unix()}).To(Equal([]any{int64(5000), "MiniMax-M2", int64(1767225600)}))

	// A chat message that attaches a file.
	withFile := func(file string) map[string]any {
		return map[string]any{"model": "m", "messages": []any{map[string]any{"role": "user", "content": []any{
			map[string]any{"type": "file", "file": map[string]any{"file_id": file}}}}}}
	}
	notFound(b.do(http.MethodPost, "/v1/chat/completions", withFile(fileA)), "B attaches A's file")
	g.Expect(b.do(http.MethodPost, "/v1/chat/completions", withFile(fileB)).status).To(Equal(http.StatusOK))

	// A video task, and the file of its video.
	task := a.do(http.MethodPost, "/v1/video_generation", map[string]any{"model": "MiniMax-Hailuo-02", "prompt": "a cat"})
	g.Expect(task.status).To(Equal(http.StatusOK), string(task.body))
	taskA := task.field("task_id")
	notFound(b.do(http.MethodGet, "/v1/query/video_generation?task_id="+taskA, nil), "B queries A's task")
	taskB := b.do(http.MethodPost, "/v1/video_generation", map[string]any{"model": "MiniMax-Hailuo-02", "prompt": "a dog"}).field("task_id")
	notFound(b.do(http.MethodGet, "/v1/query/video_generation?task_id="+taskB+"&task_id="+taskA, nil),
		"B names its own task and A's in one query")
	done := a.do(http.MethodGet, "/v1/query/video_generation?task_id="+taskA, nil)
	g.Expect(done.status).To(Equal(http.StatusOK), string(done.body))
	video := done.field("file_id")
	g.Expect(a.do(http.MethodGet, "/v1/files/retrieve?file_id="+video, nil).status).To(Equal(http.StatusOK), "the video is A's")
	notFound(b.do(http.MethodGet, "/v1/files/retrieve?file_id="+video, nil), "B downloads A's video")

	// A stored response, and one that continues it.
	resp := a.do(http.MethodPost, "/v1/responses", map[string]any{"model": "m", "input": "hi"})
	g.Expect(resp.status).To(Equal(http.StatusOK), string(resp.body))
	respA := resp.field("id")
	notFound(b.do(http.MethodGet, "/v1/responses/"+respA, nil), "B reads A's response")
	notFound(b.do(http.MethodPost, "/v1/responses", map[string]any{"model": "m", "input": "more", "previous_response_id": respA}),
		"B continues A's response")
	g.Expect(a.do(http.MethodPost, "/v1/responses", map[string]any{"model": "m", "input": "more", "previous_response_id": respA}).status).
		To(Equal(http.StatusOK))

	// Deleting is A's to do, and then the file is gone for A too.
	g.Expect(a.do(http.MethodDelete, "/v1/files/"+fileA2, nil).status).To(Equal(http.StatusOK))
	g.Expect(a.do(http.MethodGet, "/v1/files", nil).listIDs()).To(ConsistOf(fileA, result.Files[0], video))
}

// trainingEvents are the stored events of a project's fine-tuning training.
func trainingEvents(g Gomega, project string) []usage.Event {
	var out []usage.Event
	g.Expect(store.Events(context.Background(), usage.EventFilter{From: time.Unix(1767225600, 0), To: time.Unix(1767225601, 0),
		Filter: usage.Filter{Project: project, Service: string(pricing.FineTuning)}}, func(e usage.Event) error {
		out = append(out, e)
		return nil
	})).To(Succeed())
	return out
}

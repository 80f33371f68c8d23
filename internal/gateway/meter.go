package gateway

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"strings"
	"sync"

	"github.com/minimax/platform-hub/internal/jsonpick"
	"github.com/minimax/platform-hub/internal/usage"
)

// jsonNull is JSON's null.
const jsonNull = "null"

// maxUsageValue bounds a picked value (a usage object, a model name): real
// ones are a few hundred bytes.
const maxUsageValue = 64 << 10

// usageObject holds the fields of every source's usage object, as they
// came: decoding into a struct, not a map, allocates nothing per field.
type usageObject struct {
	PromptTokens             json.RawMessage `json:"prompt_tokens"`
	CompletionTokens         json.RawMessage `json:"completion_tokens"`
	InputTokens              json.RawMessage `json:"input_tokens"`
	OutputTokens             json.RawMessage `json:"output_tokens"`
	CacheCreationInputTokens json.RawMessage `json:"cache_creation_input_tokens"`
	CacheReadInputTokens     json.RawMessage `json:"cache_read_input_tokens"`
	// The details objects hold cached_tokens (OpenAI's chat completions
	// and Responses API). They are decoded on their own, so that a
	// malformed one costs only the cached figure.
	PromptTokensDetails json.RawMessage `json:"prompt_tokens_details"`
	InputTokensDetails  json.RawMessage `json:"input_tokens_details"`
}

// tokenDetails is OpenAI's prompt_tokens_details and input_tokens_details.
type tokenDetails struct {
	CachedTokens json.RawMessage `json:"cached_tokens"`
}

// A usage field, by its index in reading.figures.
const (
	fieldPrompt = iota
	fieldCompletion
	fieldInput
	fieldOutput
	fieldCacheCreation
	fieldCacheRead
	fieldPromptCached
	fieldInputCached
	fieldCount
)

// fields are the object's figures by field index; the cached figures of
// malformed details objects are left out and listed in malformed.
func (u *usageObject) fields() (fields [fieldCount]json.RawMessage, malformed bool) {
	fields = [fieldCount]json.RawMessage{u.PromptTokens, u.CompletionTokens, u.InputTokens, u.OutputTokens,
		u.CacheCreationInputTokens, u.CacheReadInputTokens}
	for _, d := range [...]struct {
		field int
		raw   json.RawMessage
	}{{fieldPromptCached, u.PromptTokensDetails}, {fieldInputCached, u.InputTokensDetails}} {
		i, raw := d.field, d.raw
		if raw == nil || bytes.Equal(bytes.TrimSpace(raw), []byte(jsonNull)) {
			continue
		}
		var d tokenDetails
		if err := json.Unmarshal(raw, &d); err != nil {
			malformed = true
			continue
		}
		fields[i] = d.CachedTokens
	}
	return fields, malformed
}

// usageFields are the fields of a source's usage object that count as
// input, cached input (a part of the input) and output tokens.
var usageFields = map[UsageSource]struct{ input, cached, output []int }{
	UsageOpenAI:    {input: []int{fieldPrompt}, cached: []int{fieldPromptCached}, output: []int{fieldCompletion}},
	UsageResponses: {input: []int{fieldInput}, cached: []int{fieldInputCached}, output: []int{fieldOutput}},
	UsageAnthropic: {input: []int{fieldInput, fieldCacheCreation, fieldCacheRead}, cached: []int{fieldCacheRead},
		output: []int{fieldOutput}},
}

// reading is what an answer said about a call's usage.
type reading struct {
	// figures are the usage fields found, and seen says whether a usage
	// object was found at all.
	figures [fieldCount]int64
	seen    bool
	model   string
	// rejected is set when a MiniMax-style answer says the task was
	// refused (base_resp.status_code other than 0) under a 2xx status.
	rejected bool
	// createdID is the ID of the object a stream made (a response).
	createdID string
	flags     []usage.Flag
}

func (r *reading) flag(f usage.Flag) {
	for _, have := range r.flags {
		if have == f {
			return
		}
	}
	r.flags = append(r.flags, f)
}

// tokens sums the source's input, cached input and output fields, each
// within the ceiling (beyond it, the figure is flagged and the ceiling
// counts). Cached tokens beyond the input are flagged and count as the
// input: the cache is a part of it.
func (r *reading) tokens(source UsageSource) (input, cached, output int64) {
	sum := func(fields []int) int64 {
		var n int64
		for _, f := range fields {
			n += r.figures[f] // each is at most the ceiling: no overflow
		}
		if n > usage.MaxTokensPerCall {
			r.flag(usage.FlagUsageMalformed)
			n = usage.MaxTokensPerCall
		}
		return n
	}
	fields := usageFields[source]
	input, cached, output = sum(fields.input), sum(fields.cached), sum(fields.output)
	if cached > input {
		r.flag(usage.FlagUsageMalformed)
		cached = input
	}
	return input, cached, output
}

// applyUsage reads a usage object. With merge, fields it lacks keep their
// value (Anthropic's message_delta updates some); without, they are zero.
func (r *reading) applyUsage(raw json.RawMessage, merge bool) {
	if bytes.Equal(bytes.TrimSpace(raw), []byte(jsonNull)) {
		return
	}
	var obj usageObject
	if err := json.Unmarshal(raw, &obj); err != nil {
		r.flag(usage.FlagUsageMalformed)
		return
	}
	if !merge {
		r.figures = [fieldCount]int64{}
	}
	r.seen = true
	fields, malformed := obj.fields()
	if malformed {
		r.flag(usage.FlagUsageMalformed)
	}
	for i, v := range fields {
		if v == nil {
			continue
		}
		n, valid := figure(v)
		if !valid {
			r.flag(usage.FlagUsageMalformed)
		}
		r.figures[i] = n
	}
}

// figure reads one usage figure: a non-negative JSON integer of at most
// usage.MaxTokensPerCall. Anything else (a string, a fraction, a negative or
// huge number) is not valid and counts as zero; null counts as zero and is
// valid.
func figure(raw json.RawMessage) (int64, bool) {
	s := bytes.TrimSpace(raw)
	if string(s) == jsonNull {
		return 0, true
	}
	if len(s) == 0 || len(s) > 10 {
		return 0, false // 10^9 has ten digits
	}
	var n int64
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, n <= usage.MaxTokensPerCall
}

// modelFrom decodes a picked model name.
func modelFrom(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return ""
	}
	return s
}

// usageReader reads usage from a response body as it streams to the client.
type usageReader interface {
	io.Writer
	// finish ends the body and says what it held; complete tells whether
	// the body was read to its end.
	finish(r *reading, complete bool)
}

// newUsageReader returns the reader for a route's answers of a content type
// (text/event-stream or JSON; other types are told apart by their first
// byte), or nil when the route's answers hold no usage.
func newUsageReader(route *Route, contentType string) usageReader {
	if route.Usage == UsageNone || route.Usage == UsageFineTuningJob {
		return nil
	}
	media, _, _ := mime.ParseMediaType(contentType)
	switch {
	case media == "text/event-stream":
		return newSSEReader(route.Usage)
	case media == "application/json" || strings.HasSuffix(media, "+json"):
		return newJSONReader(route.Usage)
	}
	return &sniffer{source: route.Usage}
}

// sniffer picks JSON or server-sent events by the body's first byte, for
// answers without a usable Content-Type.
type sniffer struct {
	source UsageSource
	inner  usageReader
}

func (s *sniffer) Write(p []byte) (int, error) {
	if s.inner == nil {
		rest := bytes.TrimLeft(p, " \t\r\n")
		if len(rest) == 0 {
			return len(p), nil
		}
		if rest[0] == '{' || rest[0] == '[' {
			s.inner = newJSONReader(s.source)
		} else {
			s.inner = newSSEReader(s.source)
		}
		p = rest
	}
	_, _ = s.inner.Write(p)
	return len(p), nil
}

func (s *sniffer) finish(r *reading, complete bool) {
	if s.inner == nil {
		if complete {
			r.flag(usage.FlagUsageMissing)
		}
		return
	}
	s.inner.finish(r, complete)
}

// Picked paths of a JSON answer.
const (
	jsonUsage = iota
	jsonModel
	jsonBaseStatus
)

// Keys of the answers the gateway reads.
const (
	keyUsage    = "usage"
	keyModel    = "model"
	keyMessage  = "message"
	keyResponse = "response"
)

var jsonPickers = sync.Pool{New: func() any {
	return jsonpick.New(maxUsageValue, []string{keyUsage}, []string{keyModel}, []string{"base_resp", "status_code"})
}}

// jsonReader reads the top-level usage and model of a JSON answer.
type jsonReader struct {
	source UsageSource
	pick   *jsonpick.Picker
}

func newJSONReader(source UsageSource) *jsonReader {
	p := jsonPickers.Get().(*jsonpick.Picker)
	p.Reset()
	return &jsonReader{source: source, pick: p}
}

func (j *jsonReader) Write(p []byte) (int, error) { return j.pick.Write(p) }

func (j *jsonReader) finish(r *reading, complete bool) {
	defer jsonPickers.Put(j.pick)
	err := j.pick.Close()
	if raw, ok := j.pick.Value(jsonModel); ok {
		r.model = modelFrom(raw)
	}
	if raw, ok := j.pick.Value(jsonBaseStatus); ok {
		n, valid := figure(raw)
		r.rejected = !valid || n != 0
	}
	if j.source != UsageVideoRequest {
		if raw, ok := j.pick.Value(jsonUsage); ok {
			r.applyUsage(raw, false)
		} else if j.pick.Oversize(jsonUsage) {
			r.flag(usage.FlagUsageMalformed)
		}
	}
	if err != nil {
		if complete {
			r.flag(usage.FlagUsageUnreadable)
		} else {
			r.flag(usage.FlagStreamIncomplete)
		}
	}
}

// Picked paths of an event of a stream.
const (
	eventType = iota
	eventUsage
	eventModel
	eventResponseUsage
	eventResponseModel
	eventMessageUsage
	eventMessageModel
	eventResponseID
)

var eventPickers = sync.Pool{New: func() any {
	return jsonpick.New(maxUsageValue, []string{"type"}, []string{keyUsage}, []string{keyModel},
		[]string{keyResponse, keyUsage}, []string{keyResponse, keyModel},
		[]string{keyMessage, keyUsage}, []string{keyMessage, keyModel}, []string{keyResponse, "id"})
}}

type lineState uint8

const (
	lineStart lineState = iota // at the start of a line
	lineField                  // reading a field name
	lineData                   // in the value of a data field
	lineSkip                   // in a line that does not matter
)

// maxField bounds the field names of server-sent events that are read.
const maxField = 16

// sseReader reads server-sent events (the WHATWG event stream format): the
// data of each event is fed to a JSON picker as it streams, however long,
// and the usage it holds is taken by the source's rules when the event ends.
type sseReader struct {
	source UsageSource
	pick   *jsonpick.Picker

	state      lineState
	field      [maxField]byte
	fieldLen   int
	afterColon bool // the first byte of a value; one space is skipped
	afterCR    bool // a \n right after \r ends nothing more
	hasData    bool // the event being read has data

	got reading
}

func newSSEReader(source UsageSource) *sseReader {
	p := eventPickers.Get().(*jsonpick.Picker)
	p.Reset()
	return &sseReader{source: source, pick: p}
}

func (s *sseReader) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		if s.afterCR && p[0] == '\n' {
			s.afterCR = false
			p = p[1:]
			continue
		}
		s.afterCR = false
		if s.state == lineData {
			if s.afterColon {
				s.afterColon = false
				if p[0] == ' ' {
					p = p[1:]
					continue
				}
			}
			i := bytes.IndexAny(p, "\r\n")
			if i < 0 {
				_, _ = s.pick.Write(p)
				return n, nil
			}
			_, _ = s.pick.Write(p[:i])
			p = p[i:]
		}
		c := p[0]
		p = p[1:]
		switch {
		case c == '\n' || c == '\r':
			s.endLine(c)
		case s.state == lineSkip:
		case c == ':':
			s.beginValue()
		default:
			if s.fieldLen < maxField {
				s.field[s.fieldLen] = c
			}
			s.fieldLen++
			s.state = lineField
		}
	}
	return n, nil
}

// beginValue is called at the colon after a field name.
func (s *sseReader) beginValue() {
	if s.fieldLen == 0 { // a comment
		s.state = lineSkip
		return
	}
	if string(s.field[:min(s.fieldLen, maxField)]) != "data" || s.fieldLen != 4 {
		s.state = lineSkip
		return
	}
	if s.hasData {
		_, _ = s.pick.Write([]byte{'\n'}) // data lines of one event join with a newline
	}
	s.hasData, s.state, s.afterColon = true, lineData, true
}

func (s *sseReader) endLine(c byte) {
	s.afterCR = c == '\r'
	switch s.state {
	case lineStart:
		s.dispatch() // a blank line ends the event
	case lineField:
		if s.fieldLen == 4 && string(s.field[:4]) == "data" { // "data" alone: an empty value
			if s.hasData {
				_, _ = s.pick.Write([]byte{'\n'})
			}
			s.hasData = true
		}
	}
	s.state, s.fieldLen = lineStart, 0
}

// dispatch takes the usage of the event just ended.
func (s *sseReader) dispatch() {
	if !s.hasData {
		return
	}
	s.hasData = false
	defer s.pick.Reset()
	if s.pick.Close() != nil {
		return // not JSON ([DONE], say): nothing to read
	}
	switch s.source {
	case UsageOpenAI:
		s.openAIEvent()
	case UsageResponses:
		s.responsesEvent()
	case UsageAnthropic:
		s.anthropicEvent()
	}
	for _, i := range []int{eventUsage, eventResponseUsage, eventMessageUsage} {
		if s.pick.Oversize(i) {
			s.got.flag(usage.FlagUsageMalformed)
		}
	}
}

// value is the picked value at path i of the event, or nil.
func (s *sseReader) value(i int) json.RawMessage {
	raw, _ := s.pick.Value(i)
	return raw
}

// openAIEvent: the last chunk that carries usage has the call's.
func (s *sseReader) openAIEvent() {
	if raw := s.value(eventUsage); raw != nil {
		s.got.applyUsage(raw, false)
	}
	if raw := s.value(eventModel); s.got.model == "" && raw != nil {
		s.got.model = modelFrom(raw)
	}
}

// responsesEvent: the event that ends the response has its usage.
func (s *sseReader) responsesEvent() {
	switch modelFrom(s.value(eventType)) {
	case "response.completed", "response.incomplete", "response.failed":
		if raw := s.value(eventResponseUsage); raw != nil {
			s.got.applyUsage(raw, false)
		}
	}
	if raw := s.value(eventResponseModel); s.got.model == "" && raw != nil {
		s.got.model = modelFrom(raw)
	}
	if raw := s.value(eventResponseID); s.got.createdID == "" && raw != nil {
		s.got.createdID = modelFrom(raw)
	}
}

// anthropicEvent: message_start has the input and the first output count;
// message_delta events update them (output_tokens is cumulative).
func (s *sseReader) anthropicEvent() {
	switch modelFrom(s.value(eventType)) {
	case "message_start":
		if raw := s.value(eventMessageUsage); raw != nil {
			s.got.applyUsage(raw, true)
		}
		if raw := s.value(eventMessageModel); raw != nil {
			s.got.model = modelFrom(raw)
		}
	case "message_delta":
		if raw := s.value(eventUsage); raw != nil {
			s.got.applyUsage(raw, true)
		}
	}
}

func (s *sseReader) finish(r *reading, complete bool) {
	defer eventPickers.Put(s.pick)
	if complete {
		s.endLine('\n') // a last event without its blank line still counts
		s.dispatch()
	}
	if r.model == "" {
		r.model = s.got.model
	}
	r.figures, r.seen, r.createdID = s.got.figures, s.got.seen, s.got.createdID
	for _, f := range s.got.flags {
		r.flag(f)
	}
	if !complete && !r.seen {
		r.flag(usage.FlagStreamIncomplete)
	}
}

// gunzipTee passes a gzip body on as it is and feeds what it decompresses
// to a reader of usage, so that a client that accepts gzip gets the
// upstream's bytes and the usage is still read from the decoded answer. The
// decompressor reads from a pipe in a goroutine of its own, one per gzip
// answer; it keeps reading after an error, so that writes never block.
type gunzipTee struct {
	pw   *io.PipeWriter
	done chan error
}

func newGunzipTee(w io.Writer) *gunzipTee {
	pr, pw := io.Pipe()
	t := &gunzipTee{pw: pw, done: make(chan error, 1)}
	go func() {
		err := decompress(w, pr)
		_, _ = io.Copy(io.Discard, pr)
		t.done <- err
	}()
	return t
}

// decompress copies the gzip stream r decompresses to w. A panic in w (a
// reader of usage) is an error of this answer, not of the process.
func decompress(w io.Writer, r io.Reader) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("reading a decompressed answer: %v", p)
		}
	}()
	zr, err := gzip.NewReader(r)
	if err != nil {
		return err
	}
	_, err = io.Copy(w, zr)
	return err
}

func (t *gunzipTee) Write(p []byte) (int, error) {
	_, _ = t.pw.Write(p)
	return len(p), nil
}

// close ends the input and waits for the decompressor; it returns its error.
func (t *gunzipTee) close() error {
	_ = t.pw.Close()
	return <-t.done
}

// meteredBody passes a response body through to the client and, once, when
// the body ends or is closed, reads what the usage reader found and calls
// done with it.
type meteredBody struct {
	io.ReadCloser
	usage usageReader
	gzip  *gunzipTee
	done  func(r *reading)
	fired bool
}

func (m *meteredBody) Read(p []byte) (int, error) {
	n, err := m.ReadCloser.Read(p)
	if n > 0 && m.usage != nil {
		if m.gzip != nil {
			_, _ = m.gzip.Write(p[:n])
		} else {
			_, _ = m.usage.Write(p[:n])
		}
	}
	if err == io.EOF {
		m.finish(true)
	}
	return n, err
}

// maxDrain bounds what is read of an answer after its client left.
const maxDrain = 1 << 30

// Close ends the body. When the client left before its end, the rest is
// read first, so that the usage an answer ends with (a stream's last event)
// is still seen: the upstream call goes on for a while after the client
// leaves (see detached), and the call is metered whole.
func (m *meteredBody) Close() error {
	if !m.fired && m.usage != nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(m, maxDrain))
	}
	m.finish(false)
	return m.ReadCloser.Close()
}

func (m *meteredBody) finish(complete bool) {
	if m.fired {
		return
	}
	m.fired = true
	r := &reading{}
	if m.gzip != nil && m.gzip.close() != nil && complete {
		// Corrupt compression; a body cut short is the reader's to tell.
		r.flag(usage.FlagUsageUnreadable)
	}
	if m.usage != nil {
		m.usage.finish(r, complete)
	}
	m.done(r)
}

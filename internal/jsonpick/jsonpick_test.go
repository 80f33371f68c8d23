package jsonpick_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/minimax/platform-hub/internal/jsonpick"
)

var testPaths = [][]string{{"usage"}, {"response", "usage"}, {"model"}, {"a", "b"}}

func TestPicker(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want map[int]string // path index -> raw value
		err  error
	}{
		{name: "top-level usage, not the one in content",
			doc:  `{"id":"x","choices":[{"message":{"content":"{\"usage\":{\"prompt_tokens\":9}}","usage":{"prompt_tokens":7}}}],"usage":{"prompt_tokens":8, "completion_tokens":11},"model":"m"}`,
			want: map[int]string{0: `{"prompt_tokens":8,"completion_tokens":11}`, 2: `"m"`}},
		{name: "nested path", doc: `{"type":"response.completed","response":{"id":"r","usage":{"input_tokens":3}}}`,
			want: map[int]string{1: `{"input_tokens":3}`}},
		{name: "the last of a repeated key wins", doc: `{"usage":{"x":1},"usage":null}`, want: map[int]string{0: `null`}},
		{name: "escaped key", doc: `{"us\u0061ge":5}`, want: map[int]string{0: `5`}},
		{name: "keys inside arrays do not match", doc: `[{"usage":1}]`, want: map[int]string{}},
		{name: "string with escapes", doc: `{"model":"a\"b\\c"}`, want: map[int]string{2: `"a\"b\\c"`}},
		{name: "numbers at the end of objects", doc: `{"a":{"b":-1.5e3}}`, want: map[int]string{3: `-1.5e3`}},
		{name: "cut short", doc: `{"usage":{"prompt_tokens":1`, want: map[int]string{}, err: jsonpick.ErrIncomplete},
		{name: "garbage", doc: `{"usage" 1}`, want: map[int]string{}, err: jsonpick.ErrSyntax},
		{name: "trailing data", doc: `{} {}`, want: map[int]string{}, err: jsonpick.ErrSyntax},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Byte by byte and whole: the result is the same.
			for _, chunk := range []int{1, 3, len(tt.doc)} {
				p := jsonpick.New(1024, testPaths...)
				for i := 0; i < len(tt.doc); i += chunk {
					_, _ = p.Write([]byte(tt.doc[i:min(i+chunk, len(tt.doc))]))
				}
				err := p.Close()
				if !errors.Is(err, tt.err) || (tt.err == nil) != (err == nil) {
					t.Fatalf("chunk %d: error %v, want %v", chunk, err, tt.err)
				}
				for i := range testPaths {
					got, ok := p.Value(i)
					want, wantOK := tt.want[i]
					if ok != wantOK || string(got) != want {
						t.Errorf("chunk %d, path %v: got %q (%v), want %q (%v)", chunk, testPaths[i], got, ok, want, wantOK)
					}
				}
			}
		})
	}
}

func TestOversizeValueIsNotKept(t *testing.T) {
	p := jsonpick.New(16, []string{"usage"})
	_, _ = p.Write([]byte(`{"usage":"` + strings.Repeat("x", 100) + `","other":1}`))
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if _, ok := p.Value(0); ok || !p.Oversize(0) {
		t.Fatalf("an oversize value is reported, not kept")
	}
}

func TestReset(t *testing.T) {
	p := jsonpick.New(64, []string{"usage"})
	_, _ = p.Write([]byte(`{"usage":1}`))
	_ = p.Close()
	p.Reset()
	_, _ = p.Write([]byte(`{"other":2}`))
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if _, ok := p.Value(0); ok {
		t.Fatal("a reset picker forgets the values of the document before")
	}
}

// FuzzPicker checks the picker against encoding/json: for every document
// encoding/json accepts, fed in chunks of any size, the picker finds the
// same values at the same paths.
func FuzzPicker(f *testing.F) {
	for _, seed := range []string{
		`{"usage":{"prompt_tokens":1},"model":"m"}`,
		`{"response":{"usage":{"input_tokens":2}},"a":{"b":[1,2,{"usage":3}]}}`,
		`{"a":{"b":"\u00e9\"x"},"a":{"c":1}}`,
		`[1,"usage",{"usage":true}]`,
		`"just a string"`,
		`12345`,
		`{"usage":{"prompt_tokens":1}`,
	} {
		f.Add([]byte(seed), uint8(3))
	}
	f.Fuzz(func(t *testing.T, doc []byte, chunk uint8) {
		p := jsonpick.New(1<<20, testPaths...)
		step := int(chunk%16) + 1
		for i := 0; i < len(doc); i += step {
			_, _ = p.Write(doc[i:min(i+step, len(doc))])
		}
		err := p.Close()
		if !json.Valid(doc) {
			return // the picker need not find every fault, only never panic
		}
		if err != nil {
			t.Fatalf("valid JSON %q refused: %v", doc, err)
		}
		var whole any
		dec := json.NewDecoder(bytes.NewReader(doc))
		dec.UseNumber()
		if err := dec.Decode(&whole); err != nil {
			t.Fatal(err)
		}
		for i, path := range testPaths {
			want, wantOK := walk(whole, path)
			raw, ok := p.Value(i)
			if ok != wantOK {
				t.Fatalf("%q, path %v: found %v, encoding/json found %v", doc, path, ok, wantOK)
			}
			if !ok {
				continue
			}
			var got any
			dec := json.NewDecoder(bytes.NewReader(raw))
			dec.UseNumber()
			if err := dec.Decode(&got); err != nil {
				t.Fatalf("%q, path %v: picked %q, which does not decode: %v", doc, path, raw, err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("%q, path %v: picked %v, encoding/json has %v", doc, path, got, want)
			}
		}
	})
}

func walk(v any, path []string) (any, bool) {
	for _, key := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		if v, ok = m[key]; !ok {
			return nil, false
		}
	}
	return v, true
}

func TestCountAndFoldCase(t *testing.T) {
	p := jsonpick.New(64, []string{"model"}, []string{"a", "b"})
	p.FoldCase = true
	_, _ = p.Write([]byte(`{"model":"x","MODEL":"y","a":{"b":1},"a":{"B":2,"b":3},"Mod\u0065l":"z"}`))
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if got, _ := p.Value(0); p.Count(0) != 3 || string(got) != `"z"` {
		t.Errorf("model: %d values, the last %s", p.Count(0), got)
	}
	if got, _ := p.Value(1); p.Count(1) != 2 || string(got) != `3` {
		t.Errorf("a.b: %d values since the last a, the last %s", p.Count(1), got)
	}
}

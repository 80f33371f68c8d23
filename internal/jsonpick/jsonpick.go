// Package jsonpick picks the values at a few key paths out of a JSON
// document while it streams past, in bounded memory and without holding the
// document: the gateway reads the usage figures of responses of any size
// this way (an embeddings answer of megabytes, a streamed reply).
//
// A Picker is written to (it is an io.Writer), so it needs no goroutine or
// buffer per stream; encoding/json and its streaming Decoder read from an
// io.Reader instead, and would. That is why this small scanner exists: it
// finds where values begin and end and which object keys lead to them, and
// leaves decoding the picked values to encoding/json. A fuzz test checks it
// against encoding/json.
package jsonpick

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// MaxDepth bounds the nesting of a document, as encoding/json does.
const MaxDepth = 10000

// maxKey bounds the object keys compared with the paths; longer keys match
// nothing.
const maxKey = 256

// Errors of a document that is not one well-formed JSON value.
var (
	ErrSyntax     = errors.New("invalid JSON")
	ErrIncomplete = errors.New("the JSON document ends early")
	ErrTooDeep    = errors.New("the JSON document is nested too deeply")
)

type state uint8

const (
	stValue      state = iota // a value must come
	stValueOrEnd              // after '[': a value or ']'
	stKeyOrEnd                // after '{': a key or '}'
	stKey                     // after ',' in an object: a key
	stColon                   // after a key
	stAfterValue              // after a value: ',' or a closing bracket, or the end
	stString                  // inside a string value
	stKeyString               // inside a key
	stLiteral                 // inside a number, true, false or null
)

type frame struct {
	object bool
	// key is the raw (still escaped) key of the member being read.
	key     []byte
	keyLong bool
}

// Picker finds the values at its paths. Its zero value is not usable; use
// New.
type Picker struct {
	// FoldCase matches keys to paths without regard to case (Unicode
	// simple folding, as strings.EqualFold), so that "Model" and "MODEL"
	// count as "model": what a case-insensitive reader of the document
	// would see. Count then tells of every spelling.
	FoldCase bool

	paths    [][]string
	maxValue int

	values   [][]byte
	found    []bool
	oversize []bool
	counts   []int

	st      state
	escaped bool
	stack   []frame
	err     error
	ended   bool // the top-level value is complete
	offset  int64

	// capturing is the index of the path whose value is being captured,
	// or -1; captureDepth is the stack depth at which that value began.
	capturing    int
	captureDepth int
	capture      []byte
	captureOver  bool
}

// New returns a Picker of the values at paths: each a list of object keys
// from the document's root, such as {"usage"} or {"response", "usage"}. A
// value larger than maxValue bytes is not kept (see Oversize).
func New(maxValue int, paths ...[]string) *Picker {
	p := &Picker{paths: paths, maxValue: maxValue}
	p.values = make([][]byte, len(paths))
	p.found = make([]bool, len(paths))
	p.oversize = make([]bool, len(paths))
	p.counts = make([]int, len(paths))
	p.Reset()
	return p
}

// Reset readies the Picker for another document, keeping its paths and
// buffers.
func (p *Picker) Reset() {
	p.st, p.escaped, p.err, p.ended, p.offset = stValue, false, nil, false, 0
	p.stack = p.stack[:0]
	p.capturing, p.captureDepth, p.capture, p.captureOver = -1, 0, p.capture[:0], false
	for i := range p.paths {
		p.values[i], p.found[i], p.oversize[i], p.counts[i] = p.values[i][:0], false, false, 0
	}
}

// Value returns the raw JSON of the last value found at path i, and whether
// there was one (of at most maxValue bytes). It is valid until the next
// Write or Reset.
func (p *Picker) Value(i int) (json.RawMessage, bool) {
	if !p.found[i] {
		return nil, false
	}
	return p.values[i], true
}

// Count is how many values were found at path i (a repeated key, or with
// FoldCase the same key in other cases, counts each time), since the last
// value of one of its ancestors began.
func (p *Picker) Count(i int) int { return p.counts[i] }

// Oversize tells whether the last value at path i was larger than maxValue
// (and so not kept).
func (p *Picker) Oversize(i int) bool { return p.oversize[i] }

// Err is the first error in the document, if any.
func (p *Picker) Err() error { return p.err }

// Ended tells whether the document's value is complete.
func (p *Picker) Ended() bool { return p.ended }

// Close ends the document: a top-level number ends here, and a document that
// is not complete is an error (ErrIncomplete).
func (p *Picker) Close() error {
	if p.err != nil {
		return p.err
	}
	if p.st == stLiteral && len(p.stack) == 0 {
		p.endLiteral()
	}
	if !p.ended {
		p.err = ErrIncomplete
	}
	return p.err
}

// Write scans b. It always consumes all of b and never fails: errors in the
// document are kept for Err and Close.
func (p *Picker) Write(b []byte) (int, error) {
	n := len(b)
	for i := 0; i < len(b) && p.err == nil; i++ {
		c := b[i]
		switch p.st {
		case stString, stKeyString:
			// Skip to the next quote or backslash in one step.
			if !p.escaped {
				j := bytes.IndexAny(b[i:], `"\`)
				if j < 0 {
					p.inString(b[i:])
					i = len(b)
					continue
				}
				if j > 0 {
					p.inString(b[i : i+j])
					i += j
					c = b[i]
				}
			}
			p.stringByte(c)
		case stLiteral:
			if isLiteralByte(c) {
				p.captureByte(c)
				continue
			}
			p.endLiteral()
			p.structural(c)
		default:
			p.structural(c)
		}
	}
	p.offset += int64(n)
	return n, nil
}

// inString takes bytes of a string that hold no quote or backslash.
func (p *Picker) inString(s []byte) {
	if p.st == stKeyString {
		p.keyBytes(s)
	}
	if p.capturing >= 0 {
		p.captureBytes(s)
	}
}

func (p *Picker) stringByte(c byte) {
	if p.st == stKeyString {
		p.keyBytes([]byte{c})
	}
	p.captureByte(c)
	switch {
	case p.escaped:
		p.escaped = false
	case c == '\\':
		p.escaped = true
	case c == '"':
		if p.st == stKeyString {
			p.st = stColon
			return
		}
		p.st = stAfterValue
		p.valueEnded()
	}
}

// structural handles a byte outside strings and literals.
func (p *Picker) structural(c byte) {
	if c == ' ' || c == '\t' || c == '\n' || c == '\r' {
		return
	}
	if p.ended {
		p.fail("more data after the document")
		return
	}
	switch p.st {
	case stValue, stValueOrEnd:
		if c == ']' && p.st == stValueOrEnd {
			p.pop(c)
			return
		}
		p.beginValue(c)
	case stKeyOrEnd, stKey:
		p.beginKey(c)
	case stColon:
		if c != ':' {
			p.fail("a colon must follow an object key")
			return
		}
		p.captureByte(c)
		p.st = stValue
	case stAfterValue:
		p.afterValue(c)
	}
}

// beginKey handles the first byte of an object member, or the end of an
// empty object.
func (p *Picker) beginKey(c byte) {
	switch {
	case c == '}' && p.st == stKeyOrEnd:
		p.pop(c)
	case c == '"':
		top := &p.stack[len(p.stack)-1]
		top.key, top.keyLong = top.key[:0], false
		p.captureByte(c)
		p.st = stKeyString
	default:
		p.fail("an object key must be a string")
	}
}

func (p *Picker) afterValue(c byte) {
	if len(p.stack) == 0 {
		p.fail("more data after the document")
		return
	}
	top := p.stack[len(p.stack)-1]
	switch {
	case c == ',' && top.object:
		p.captureByte(c)
		p.st = stKey
	case c == ',':
		p.captureByte(c)
		p.st = stValue
	case c == '}' && top.object, c == ']' && !top.object:
		p.pop(c)
	default:
		p.fail(fmt.Sprintf("unexpected %q after a value", c))
	}
}

// beginValue starts the value whose first byte is c.
func (p *Picker) beginValue(c byte) {
	if p.capturing < 0 {
		if i := p.matching(); i >= 0 {
			p.capturing, p.captureDepth, p.capture, p.captureOver = i, len(p.stack), p.capture[:0], false
		}
	}
	p.captureByte(c)
	switch {
	case c == '{' || c == '[':
		if len(p.stack) >= MaxDepth {
			p.err = ErrTooDeep
			return
		}
		p.push(c == '{')
		if c == '{' {
			p.st = stKeyOrEnd
		} else {
			p.st = stValueOrEnd
		}
	case c == '"':
		p.st = stString
	case c == '-' || (c >= '0' && c <= '9') || c == 't' || c == 'f' || c == 'n':
		p.st = stLiteral
	default:
		p.fail(fmt.Sprintf("unexpected %q where a value must start", c))
	}
}

func (p *Picker) push(object bool) {
	if len(p.stack) < cap(p.stack) {
		p.stack = p.stack[:len(p.stack)+1]
		f := &p.stack[len(p.stack)-1]
		f.object, f.key, f.keyLong = object, f.key[:0], false
		return
	}
	p.stack = append(p.stack, frame{object: object})
}

// pop closes the innermost container with its closing bracket c.
func (p *Picker) pop(c byte) {
	p.captureByte(c)
	p.stack = p.stack[:len(p.stack)-1]
	p.st = stAfterValue
	p.valueEnded()
}

func (p *Picker) endLiteral() {
	p.st = stAfterValue
	p.valueEnded()
}

// valueEnded is called after a value (at the current depth) is complete.
func (p *Picker) valueEnded() {
	if p.capturing >= 0 && len(p.stack) == p.captureDepth {
		// The last value of a key repeated in an object wins, as with
		// encoding/json.
		i := p.capturing
		p.capturing = -1
		p.counts[i]++
		if p.captureOver {
			p.found[i], p.oversize[i] = false, true
		} else {
			p.values[i] = append(p.values[i][:0], p.capture...)
			p.found[i], p.oversize[i] = true, false
		}
	}
	if len(p.stack) == 0 {
		p.ended = true
	}
}

// matching returns the index of the path that leads to a value beginning
// now, or -1. A value beginning on the way to a path replaces what was found
// beneath it before (a repeated key: the last one wins, as with
// encoding/json).
func (p *Picker) matching() int {
	depth := len(p.stack)
	if depth == 0 || !p.stack[depth-1].object {
		return -1
	}
	match := -1
	for i, path := range p.paths {
		if len(path) < depth {
			continue
		}
		ok := true
		for d := 0; d < depth && ok; d++ {
			ok = p.stack[d].object && !p.stack[d].keyLong && keyEquals(p.stack[d].key, path[d], p.FoldCase)
		}
		switch {
		case !ok:
		case len(path) == depth:
			match = i
		default:
			p.found[i], p.oversize[i], p.counts[i] = false, false, 0
		}
	}
	return match
}

// keyEquals compares a raw key, escapes and all, with a plain one, folding
// case when fold is set. Keys without escapes are compared in place.
func keyEquals(raw []byte, key string, fold bool) bool {
	// raw ends with the closing quote.
	raw = raw[:max(len(raw)-1, 0)]
	if bytes.IndexByte(raw, '\\') < 0 {
		if fold {
			return bytes.EqualFold(raw, []byte(key))
		}
		return string(raw) == key
	}
	var decoded string
	quoted := make([]byte, 0, len(raw)+2)
	quoted = append(append(append(quoted, '"'), raw...), '"')
	if json.Unmarshal(quoted, &decoded) != nil {
		return false
	}
	if fold {
		return strings.EqualFold(decoded, key)
	}
	return decoded == key
}

func (p *Picker) keyBytes(s []byte) {
	top := &p.stack[len(p.stack)-1]
	if top.keyLong {
		return
	}
	if len(top.key)+len(s) > maxKey {
		top.keyLong = true
		return
	}
	top.key = append(top.key, s...)
}

func (p *Picker) captureByte(c byte) {
	if p.capturing < 0 || p.captureOver {
		return
	}
	if len(p.capture) >= p.maxValue {
		p.captureOver = true
		return
	}
	p.capture = append(p.capture, c)
}

func (p *Picker) captureBytes(s []byte) {
	if p.captureOver {
		return
	}
	if len(p.capture)+len(s) > p.maxValue {
		p.captureOver = true
		return
	}
	p.capture = append(p.capture, s...)
}

func (p *Picker) fail(msg string) {
	p.err = fmt.Errorf("%w: %s (near byte %d)", ErrSyntax, msg, p.offset)
}

func isLiteralByte(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || c == '-' || c == '+' || c == '.' || c == 'E'
}

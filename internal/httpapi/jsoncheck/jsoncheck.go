// Package jsoncheck vets a JSON request body before any handler decodes it, so
// that every endpoint refuses the same bad bodies with the same answer:
// malformed JSON, trailing data, duplicate keys, invalid UTF-8 and excessive
// nesting. encoding/json accepts the last three silently (the last duplicate
// wins, bad UTF-8 becomes U+FFFD), which lets two parsers of one body disagree.
//
// Check is a single pass over the bytes with no recursion and no tree; apart
// from a set per object with many keys, it allocates nothing for typical
// bodies. Its time is linear in the body size, which the caller must already
// have capped.
package jsoncheck

import (
	"bytes"
	"fmt"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"

	"atrium/internal/kernel"
)

// Messages Check puts in the returned error; the field names the location.
const (
	msgRequired     = "a JSON body is required"
	msgTrailing     = "unexpected data after the JSON value"
	msgDuplicate    = "duplicate key"
	msgTooDeep      = "nested too deeply"
	msgInvalidUTF8  = "invalid UTF-8"
	rootPath        = "body"
	maxPathKeyBytes = 64 // longer keys are shortened in error paths
	linearKeyScan   = 16 // objects with more keys switch to a map for duplicates
)

// Check returns nil if body holds exactly one JSON value (RFC 8259) with no
// duplicate object keys, only valid UTF-8 in its strings and escapes, and at
// most maxDepth levels of nested objects and arrays; a maxDepth of 0 admits
// only scalars. Otherwise it returns a *kernel.Error with code invalid whose
// single field names where the body went wrong, as a path such as "body",
// "body.name" or `body.items[2]["first name"]`:
//
//   - an empty or blank body: "body", "a JSON body is required";
//   - a syntax error: "body", "malformed JSON at byte N: …", N being the
//     zero-based offset of the first byte that cannot be parsed (the body's
//     length when it ends too soon);
//   - data after the value: "body", "unexpected data after the JSON value";
//   - a repeated key: the key's path, "duplicate key" (keys are compared after
//     unescaping, so "a" and "\u0061" are the same key);
//   - bad UTF-8 in a string, or an escape for half a surrogate pair: the
//     string's path (the object's path for a key), "invalid UTF-8";
//   - an object or array that opens level maxDepth+1: its path,
//     "nested too deeply".
//
// The first problem in document order is the one reported.
func Check(body []byte, maxDepth int) error {
	c := &checker{data: body, maxDepth: maxDepth}
	c.frames, c.keys, c.arena = c.frameBuf[:0], c.keyBuf[:0], c.arenaBuf[:0]
	return c.run()
}

// frame is one open object or array.
type frame struct {
	object bool
	index  int  // arrays: the index of the current element
	hasKey bool // objects: whether key names the current member yet
	key    span // objects: the current member's key, in checker.arena
	// keysMark and arenaMark are where this object's keys begin in
	// checker.keys and checker.arena; closing the object truncates both.
	keysMark  int
	arenaMark int
	set       map[string]struct{} // built once the object has many keys
}

// span is a decoded key held in checker.arena.
type span struct{ start, end int }

// syntaxError is a position and a reason, turned into the public message once.
type syntaxError struct {
	offset int
	reason string
}

type checker struct {
	data     []byte
	pos      int
	maxDepth int
	frames   []frame
	keys     []span // keys of all open objects, innermost last
	arena    []byte // unescaped key bytes of all open objects

	// Room for a typical body, so that checking one costs a single allocation.
	frameBuf [8]frame
	keyBuf   [32]span
	arenaBuf [512]byte
}

func (c *checker) run() error {
	c.skipSpace()
	if c.pos == len(c.data) {
		return kernel.Invalid(rootPath, msgRequired)
	}
	for {
		needValue, err := c.value()
		if err != nil {
			return err
		}
		for !needValue {
			if len(c.frames) == 0 {
				c.skipSpace()
				if c.pos != len(c.data) {
					return kernel.Invalid(rootPath, msgTrailing)
				}
				return nil
			}
			if needValue, err = c.next(); err != nil {
				return err
			}
		}
	}
}

// value parses the value at the current position. For a non-empty object or
// array it consumes only the opening (and the first key) and reports that a
// member value is needed next.
func (c *checker) value() (needValue bool, err error) {
	c.skipSpace()
	if c.pos == len(c.data) {
		return false, c.unexpectedEnd()
	}
	switch b := c.data[c.pos]; {
	case b == '{' || b == '[':
		if len(c.frames) >= c.maxDepth {
			return false, kernel.Invalid(c.path(), msgTooDeep)
		}
		c.pos++
		c.frames = append(c.frames, frame{object: b == '{', keysMark: len(c.keys), arenaMark: len(c.arena)})
		closer := byte(']')
		if b == '{' {
			closer = '}'
		}
		c.skipSpace()
		if c.pos < len(c.data) && c.data[c.pos] == closer {
			c.pos++
			c.pop()
			return false, nil
		}
		if b == '{' {
			return true, c.member()
		}
		return true, nil
	case b == '"':
		return false, c.str(nil)
	case b == '-' || '0' <= b && b <= '9':
		return false, c.number()
	case b == 't':
		return false, c.literal("true")
	case b == 'f':
		return false, c.literal("false")
	case b == 'n':
		return false, c.literal("null")
	default:
		return false, c.syntax(c.pos, fmt.Sprintf("invalid character %s looking for the beginning of a value", quoteByte(b)))
	}
}

// next consumes what follows a complete value inside the innermost container:
// a comma and the next key, or the closing bracket. It reports whether another
// value is needed.
func (c *checker) next() (needValue bool, err error) {
	c.skipSpace()
	if c.pos == len(c.data) {
		return false, c.unexpectedEnd()
	}
	top := &c.frames[len(c.frames)-1]
	b := c.data[c.pos]
	switch {
	case b == ',':
		c.pos++
		if top.object {
			return true, c.member()
		}
		top.index++
		return true, nil
	case top.object && b == '}', !top.object && b == ']':
		c.pos++
		c.pop()
		return false, nil
	case top.object:
		return false, c.syntax(c.pos, fmt.Sprintf("invalid character %s after an object value, expecting ',' or '}'", quoteByte(b)))
	default:
		return false, c.syntax(c.pos, fmt.Sprintf("invalid character %s after an array element, expecting ',' or ']'", quoteByte(b)))
	}
}

// member parses an object key and the colon after it, and records the key.
func (c *checker) member() error {
	c.skipSpace()
	if c.pos == len(c.data) {
		return c.unexpectedEnd()
	}
	if c.data[c.pos] != '"' {
		return c.syntax(c.pos, fmt.Sprintf("invalid character %s looking for the beginning of an object key", quoteByte(c.data[c.pos])))
	}
	top := &c.frames[len(c.frames)-1]
	top.hasKey = false
	start := len(c.arena)
	if err := c.str(&c.arena); err != nil {
		return err
	}
	top.key, top.hasKey = span{start, len(c.arena)}, true
	if c.duplicate(top) {
		return kernel.Invalid(c.path(), msgDuplicate)
	}
	c.skipSpace()
	if c.pos == len(c.data) {
		return c.unexpectedEnd()
	}
	if c.data[c.pos] != ':' {
		return c.syntax(c.pos, fmt.Sprintf("invalid character %s after an object key, expecting ':'", quoteByte(c.data[c.pos])))
	}
	c.pos++
	return nil
}

// duplicate reports whether top's current key was seen before in the same
// object, and records it. Small objects are scanned linearly, which costs no
// allocation; an object that grows past linearKeyScan keys gets a set of its
// own, dropped when it closes, so the total work stays linear.
func (c *checker) duplicate(top *frame) bool {
	key := c.arena[top.key.start:top.key.end]
	if top.set != nil {
		if _, ok := top.set[string(key)]; ok {
			return true
		}
		top.set[string(key)] = struct{}{}
		return false
	}
	seen := c.keys[top.keysMark:]
	for _, s := range seen {
		if bytes.Equal(c.arena[s.start:s.end], key) {
			return true
		}
	}
	c.keys = append(c.keys, top.key)
	if len(seen)+1 > linearKeyScan {
		top.set = make(map[string]struct{}, 2*linearKeyScan)
		for _, s := range c.keys[top.keysMark:] {
			top.set[string(c.arena[s.start:s.end])] = struct{}{}
		}
	}
	return false
}

func (c *checker) pop() {
	top := c.frames[len(c.frames)-1]
	if top.object {
		c.keys = c.keys[:top.keysMark]
		c.arena = c.arena[:top.arenaMark]
	}
	c.frames = c.frames[:len(c.frames)-1]
}

// str parses the string starting at the current quote. When out is not nil it
// appends the unescaped string to *out.
func (c *checker) str(out *[]byte) error {
	c.pos++ // opening quote
	runStart := c.pos
	flush := func() {
		if out != nil {
			*out = append(*out, c.data[runStart:c.pos]...)
		}
	}
	for c.pos < len(c.data) {
		b := c.data[c.pos]
		switch {
		case b == '"':
			flush()
			c.pos++
			return nil
		case b == '\\':
			flush()
			if err := c.escape(out); err != nil {
				return err
			}
			runStart = c.pos
		case b < 0x20:
			return c.syntax(c.pos, fmt.Sprintf("invalid character %s in a string, control characters must be escaped", quoteByte(b)))
		case b < utf8.RuneSelf:
			c.pos++
		default:
			r, size := utf8.DecodeRune(c.data[c.pos:])
			if r == utf8.RuneError && size == 1 {
				return kernel.Invalid(c.path(), msgInvalidUTF8)
			}
			c.pos += size
		}
	}
	return c.unexpectedEnd()
}

// escape parses the escape sequence at the current backslash.
func (c *checker) escape(out *[]byte) error {
	start := c.pos
	c.pos++
	if c.pos == len(c.data) {
		return c.unexpectedEnd()
	}
	var r rune
	switch b := c.data[c.pos]; b {
	case '"', '\\', '/':
		r = rune(b)
	case 'b':
		r = '\b'
	case 'f':
		r = '\f'
	case 'n':
		r = '\n'
	case 'r':
		r = '\r'
	case 't':
		r = '\t'
	case 'u':
		c.pos++
		u, err := c.hex4()
		if err != nil {
			return err
		}
		r = u
		if utf16.IsSurrogate(r) {
			// Only a high half followed by an escaped low half is a character;
			// encoding/json would turn anything else into U+FFFD.
			if r >= 0xDC00 || !bytes.HasPrefix(c.data[c.pos:], []byte(`\u`)) {
				return kernel.Invalid(c.path(), msgInvalidUTF8)
			}
			c.pos += 2
			low, err := c.hex4()
			if err != nil {
				return err
			}
			if r = utf16.DecodeRune(r, low); r == utf8.RuneError {
				return kernel.Invalid(c.path(), msgInvalidUTF8)
			}
		}
		if out != nil {
			*out = utf8.AppendRune(*out, r)
		}
		return nil
	default:
		return c.syntax(start, fmt.Sprintf("invalid escape sequence \\%s in a string", printable(b)))
	}
	c.pos++
	if out != nil {
		*out = append(*out, byte(r))
	}
	return nil
}

// hex4 parses the four hex digits of a \u escape.
func (c *checker) hex4() (rune, error) {
	var r rune
	for range 4 {
		if c.pos == len(c.data) {
			return 0, c.unexpectedEnd()
		}
		b := c.data[c.pos]
		switch {
		case '0' <= b && b <= '9':
			r = r<<4 | rune(b-'0')
		case 'a' <= b && b <= 'f':
			r = r<<4 | rune(b-'a'+10)
		case 'A' <= b && b <= 'F':
			r = r<<4 | rune(b-'A'+10)
		default:
			return 0, c.syntax(c.pos, fmt.Sprintf("invalid character %s in a \\u escape", quoteByte(b)))
		}
		c.pos++
	}
	return r, nil
}

// number parses -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?.
func (c *checker) number() error {
	if c.data[c.pos] == '-' {
		c.pos++
	}
	switch {
	case c.pos == len(c.data):
		return c.unexpectedEnd()
	case c.data[c.pos] == '0':
		c.pos++
	case isDigit(c.data[c.pos]):
		c.digits()
	default:
		return c.syntax(c.pos, fmt.Sprintf("invalid character %s in a number, expecting a digit", quoteByte(c.data[c.pos])))
	}
	if c.pos < len(c.data) && c.data[c.pos] == '.' {
		c.pos++
		if err := c.requireDigits("after the decimal point"); err != nil {
			return err
		}
	}
	if c.pos < len(c.data) && (c.data[c.pos] == 'e' || c.data[c.pos] == 'E') {
		c.pos++
		if c.pos < len(c.data) && (c.data[c.pos] == '+' || c.data[c.pos] == '-') {
			c.pos++
		}
		if err := c.requireDigits("in the exponent"); err != nil {
			return err
		}
	}
	return nil
}

func (c *checker) requireDigits(where string) error {
	if c.pos == len(c.data) {
		return c.unexpectedEnd()
	}
	if !isDigit(c.data[c.pos]) {
		return c.syntax(c.pos, fmt.Sprintf("invalid character %s %s, expecting a digit", quoteByte(c.data[c.pos]), where))
	}
	c.digits()
	return nil
}

func (c *checker) digits() {
	for c.pos < len(c.data) && isDigit(c.data[c.pos]) {
		c.pos++
	}
}

func (c *checker) literal(word string) error {
	for i := range len(word) {
		if c.pos == len(c.data) {
			return c.unexpectedEnd()
		}
		if c.data[c.pos] != word[i] {
			return c.syntax(c.pos, fmt.Sprintf("invalid character %s in literal %s", quoteByte(c.data[c.pos]), word))
		}
		c.pos++
	}
	return nil
}

func (c *checker) skipSpace() {
	for c.pos < len(c.data) {
		switch c.data[c.pos] {
		case ' ', '\t', '\n', '\r':
			c.pos++
		default:
			return
		}
	}
}

func (c *checker) unexpectedEnd() error {
	return c.syntax(len(c.data), "unexpected end of input")
}

func (c *checker) syntax(offset int, reason string) error {
	return kernel.Invalid(rootPath, fmt.Sprintf("malformed JSON at byte %d: %s", offset, reason))
}

// path names the current position: "body", then ".key" for a key that reads
// as an identifier, `["key"]` for any other key and "[i]" for an element.
func (c *checker) path() string {
	p := []byte(rootPath)
	for i := range c.frames {
		f := &c.frames[i]
		switch {
		case !f.object:
			p = append(p, '[')
			p = strconv.AppendInt(p, int64(f.index), 10)
			p = append(p, ']')
		case f.hasKey:
			p = appendKey(p, c.arena[f.key.start:f.key.end])
		}
	}
	return string(p)
}

func appendKey(p, key []byte) []byte {
	if isIdentifier(key) {
		return append(append(p, '.'), key...)
	}
	if len(key) > maxPathKeyBytes {
		cut := maxPathKeyBytes
		for cut > 0 && !utf8.RuneStart(key[cut]) {
			cut--
		}
		key = append(key[:cut:cut], "…"...)
	}
	p = append(p, '[')
	p = strconv.AppendQuote(p, string(key))
	return append(p, ']')
}

func isIdentifier(key []byte) bool {
	if len(key) == 0 || len(key) > maxPathKeyBytes || isDigit(key[0]) {
		return false
	}
	for _, b := range key {
		if !(isDigit(b) || 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || b == '_') {
			return false
		}
	}
	return true
}

func isDigit(b byte) bool { return '0' <= b && b <= '9' }

// quoteByte shows an offending byte in a message: printable ASCII as 'x', the
// rest as a hex escape so that the message stays valid, readable UTF-8.
func quoteByte(b byte) string {
	return "'" + printable(b) + "'"
}

func printable(b byte) string {
	if b >= 0x20 && b < 0x7f {
		return string(rune(b))
	}
	return fmt.Sprintf(`\x%02x`, b)
}

package jsoncheck_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"unicode/utf8"

	"atrium/internal/httpapi/jsoncheck"
	"atrium/internal/kernel"
)

const depth = 4

func TestCheckAccepts(t *testing.T) {
	for _, body := range []string{
		`{}`,
		`[]`,
		`null`, `true`, `false`, `0`, `-0`, `1.5e-3`, `-12E+2`, `"x"`,
		` {"name": "Ada"} `,
		"\t\r\n{}\n",
		`{"a":1,"b":{"a":2},"c":[{"a":3},{"a":3}]}`, // same key in different objects
		`{"a":{"x":1},"b":{"x":1}}`,                 // siblings do not share keys
		`{"a":1,"A":1}`,                             // keys are case-sensitive
		`{"":1,"\"":2,"\\":3}`,
		`{"k":"\u00e9\ud83d\ude00 \" \\ \/ \b \f \n \r \t"}`,
		`{"emoji":"😀","accents":"déjà vu","cjk":"漢字"}`,
		`[[[[]]]]`, // exactly depth 4
		`{"a":{"b":{"c":[1]}}}`,
		`[1,[2,[3,[4]]]]`,
		`{"long":"` + strings.Repeat("x", 10000) + `"}`,
	} {
		if err := jsoncheck.Check([]byte(body), depth); err != nil {
			t.Errorf("Check(%.60q) = %v, want nil", body, err)
		}
	}
}

func TestCheckRefuses(t *testing.T) {
	manyKeys := func(n int, dup string) string {
		var b strings.Builder
		b.WriteString("{")
		for i := range n {
			fmt.Fprintf(&b, `"k%d":%d,`, i, i)
		}
		b.WriteString(`"` + dup + `":0}`)
		return b.String()
	}
	for _, tc := range []struct {
		name, body, field, msg string
	}{
		// Missing.
		{"empty", ``, "body", "a JSON body is required"},
		{"blank", " \n\t ", "body", "a JSON body is required"},

		// Syntax.
		{"bare word", `hello`, "body", "malformed JSON at byte 0: invalid character 'h' looking for the beginning of a value"},
		{"missing colon", `{"name" "Ada"}`, "body", "malformed JSON at byte 8: invalid character '\"' after an object key, expecting ':'"},
		{"unclosed key", `{"name": "Ada", "x}`, "body", "malformed JSON at byte 19: unexpected end of input"},
		{"unquoted key", `{name: 1}`, "body", "malformed JSON at byte 1: invalid character 'n' looking for the beginning of an object key"},
		{"trailing comma object", `{"a":1,}`, "body", "malformed JSON at byte 7: invalid character '}' looking for the beginning of an object key"},
		{"trailing comma array", `[1,]`, "body", "malformed JSON at byte 3: invalid character ']' looking for the beginning of a value"},
		{"missing comma", `[1 2]`, "body", "malformed JSON at byte 3: invalid character '2' after an array element, expecting ',' or ']'"},
		{"wrong closer", `{"a":1]`, "body", "malformed JSON at byte 6: invalid character ']' after an object value, expecting ',' or '}'"},
		{"unclosed object", `{"a":1`, "body", "malformed JSON at byte 6: unexpected end of input"},
		{"unclosed array", `[`, "body", "malformed JSON at byte 1: unexpected end of input"},
		{"unclosed string", `"abc`, "body", "malformed JSON at byte 4: unexpected end of input"},
		{"single quotes", `{'a':1}`, "body", "malformed JSON at byte 1: invalid character ''' looking for the beginning of an object key"},
		{"raw newline in string", "\"a\nb\"", "body", `malformed JSON at byte 2: invalid character '\x0a' in a string, control characters must be escaped`},
		{"bad escape", `"\x41"`, "body", `malformed JSON at byte 1: invalid escape sequence \x in a string`},
		{"short unicode escape", `"\u12"`, "body", `malformed JSON at byte 5: invalid character '"' in a \u escape`},
		{"leading zero", `01`, "body", "unexpected data after the JSON value"},
		{"leading plus", `+1`, "body", "malformed JSON at byte 0: invalid character '+' looking for the beginning of a value"},
		{"bare minus", `-`, "body", "malformed JSON at byte 1: unexpected end of input"},
		{"minus letter", `-x`, "body", "malformed JSON at byte 1: invalid character 'x' in a number, expecting a digit"},
		{"dot without digits", `1.`, "body", "malformed JSON at byte 2: unexpected end of input"},
		{"dot then letter", `[1.e5]`, "body", "malformed JSON at byte 3: invalid character 'e' after the decimal point, expecting a digit"},
		{"exponent without digits", `1e+`, "body", "malformed JSON at byte 3: unexpected end of input"},
		{"NaN", `NaN`, "body", "malformed JSON at byte 0: invalid character 'N' looking for the beginning of a value"},
		{"truncated literal", `tru`, "body", "malformed JSON at byte 3: unexpected end of input"},
		{"misspelt literal", `nul1`, "body", "malformed JSON at byte 3: invalid character '1' in literal null"},
		{"byte order mark", "\ufeff{}", "body", `malformed JSON at byte 0: invalid character '\xef' looking for the beginning of a value`},
		{"nul byte", "\x00", "body", `malformed JSON at byte 0: invalid character '\x00' looking for the beginning of a value`},
		{"comment", `{} // hi`, "body", "unexpected data after the JSON value"},

		// Trailing data.
		{"two objects", `{}{}`, "body", "unexpected data after the JSON value"},
		{"object then word", `{} x`, "body", "unexpected data after the JSON value"},
		{"two numbers", `1 2`, "body", "unexpected data after the JSON value"},
		{"extra closer", `{"a":1}}`, "body", "unexpected data after the JSON value"},

		// Duplicates.
		{"top-level duplicate", `{"name":"a","name":"b"}`, "body.name", "duplicate key"},
		{"nested duplicate", `{"items":[{"id":1},{"id":2},{"id":3,"id":4}]}`, "body.items[2].id", "duplicate key"},
		{"escaped duplicate", `{"a":1,"\u0061":2}`, "body.a", "duplicate key"},
		{"duplicate after nested", `{"a":{"a":1,"b":2},"a":3}`, "body.a", "duplicate key"},
		{"odd key duplicate", `{"first name":1,"first name":2}`, "body[\"first name\"]", "duplicate key"},
		{"empty key duplicate", `{"":1,"":2}`, `body[""]`, "duplicate key"},
		{"duplicate in a large object", manyKeys(100, "k57"), "body.k57", "duplicate key"},
		{"duplicate at the switch to a set", manyKeys(16, "k0"), "body.k0", "duplicate key"},

		// Depth (the limit in this table is 4).
		{"too deep arrays", `[[[[[]]]]]`, "body[0][0][0][0]", "nested too deeply"},
		{"too deep objects", `{"a":{"b":{"c":{"d":{}}}}}`, "body.a.b.c.d", "nested too deeply"},
		{"too deep mixed", `{"a":[{"b":[{}]}]}`, "body.a[0].b[0]", "nested too deeply"},
		{"too deep late element", `[0,[1,[2,[3,4,[5]]]]]`, "body[1][1][1][2]", "nested too deeply"},

		// UTF-8.
		{"bad byte in value", "{\"name\":\"a\xffb\"}", "body.name", "invalid UTF-8"},
		{"bad byte in key", "{\"ok\":{\"\xff\":1}}", "body.ok", "invalid UTF-8"},
		{"truncated rune", "[\"ok\",\"\xe2\x82\"]", "body[1]", "invalid UTF-8"},
		{"encoded surrogate", "\"\xed\xa0\x80\"", "body", "invalid UTF-8"},
		{"overlong encoding", "\"\xc0\xaf\"", "body", "invalid UTF-8"},
		{"lone high surrogate escape", `{"a":"\ud83d"}`, "body.a", "invalid UTF-8"},
		{"lone low surrogate escape", `{"a":"\ude00x"}`, "body.a", "invalid UTF-8"},
		{"high surrogate then letter", `{"a":"\ud83d\u0041"}`, "body.a", "invalid UTF-8"},
		{"rune cut by the end of input", "\"\xc3", "body", "invalid UTF-8"},

		// The first problem in document order wins.
		{"duplicate before truncation", `{"a":1,"a":`, "body.a", "duplicate key"},
		{"truncation before duplicate", `{"a":1 "a":2}`, "body", "malformed JSON at byte 7: invalid character '\"' after an object value, expecting ',' or '}'"},
		{"bad byte outside strings", "{\xff}", "body", `malformed JSON at byte 1: invalid character '\xff' looking for the beginning of an object key`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := jsoncheck.Check([]byte(tc.body), depth)
			var e *kernel.Error
			if !errors.As(err, &e) {
				t.Fatalf("Check(%q) = %v, want a *kernel.Error", tc.body, err)
			}
			if e.Code != kernel.CodeInvalid {
				t.Errorf("code = %q, want invalid", e.Code)
			}
			if e.Message != tc.msg {
				t.Errorf("message = %q\n                want %q", e.Message, tc.msg)
			}
			if len(e.Fields) != 1 || e.Fields[tc.field] != tc.msg {
				t.Errorf("fields = %q, want {%q: %q}", e.Fields, tc.field, tc.msg)
			}
		})
	}
}

func TestCheckDepthLimits(t *testing.T) {
	for _, tc := range []struct {
		body     string
		maxDepth int
		field    string // "" when the body passes
	}{
		{`1`, 0, ""},
		{`{}`, 0, "body"},
		{`[]`, 0, "body"},
		{`{}`, 1, ""},
		{`{"a":[]}`, 1, "body.a"},
		{`{"a":1}`, -1, "body"},
		{strings.Repeat("[", 100) + strings.Repeat("]", 100), 100, ""},
		{strings.Repeat("[", 101) + strings.Repeat("]", 101), 100, "body" + strings.Repeat("[0]", 100)},
	} {
		err := jsoncheck.Check([]byte(tc.body), tc.maxDepth)
		if tc.field == "" {
			if err != nil {
				t.Errorf("Check(%.30q, %d) = %v, want nil", tc.body, tc.maxDepth, err)
			}
			continue
		}
		if e := kernel.As(err); err == nil || e.Fields[tc.field] != "nested too deeply" {
			t.Errorf("Check(%.30q, %d) = %v, want nested too deeply at %s", tc.body, tc.maxDepth, err, tc.field)
		}
	}
}

// A body nested far beyond the limit must be refused at the limit, without
// recursion, however deep it goes.
func TestCheckHugeNesting(t *testing.T) {
	body := strings.Repeat("[", 1<<20)
	err := jsoncheck.Check([]byte(body), 32)
	if e := kernel.As(err); e.Message != "nested too deeply" {
		t.Fatalf("Check = %v, want nested too deeply", err)
	}
	// With no practical limit the scanner still does not recurse.
	err = jsoncheck.Check([]byte(body), 1<<30)
	if e := kernel.As(err); !strings.HasPrefix(e.Message, "malformed JSON at byte 1048576") {
		t.Fatalf("Check = %v, want malformed at the end", err)
	}
}

func TestCheckPathShortensLongKeys(t *testing.T) {
	key := strings.Repeat("é", 100)
	err := jsoncheck.Check([]byte(`{"`+key+`":1,"`+key+`":2}`), depth)
	e := kernel.As(err)
	if len(e.Fields) != 1 {
		t.Fatalf("Check = %v, want one field", err)
	}
	for field := range e.Fields {
		if !utf8.ValidString(field) || len(field) > 100 || !strings.HasPrefix(field, `body["éé`) || !strings.HasSuffix(field, `…"]`) {
			t.Fatalf("field = %q, want a short quoted path", field)
		}
	}
}

// Large objects switch from a linear scan to a set; both must see every key,
// and the set of one object must not leak into the next.
func TestCheckManyKeys(t *testing.T) {
	var b strings.Builder
	b.WriteString("[")
	for obj := range 3 {
		if obj > 0 {
			b.WriteString(",")
		}
		b.WriteString("{")
		for i := range 1000 {
			if i > 0 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, `"k%d":{"k%d":1}`, i, i)
		}
		b.WriteString("}")
	}
	b.WriteString("]")
	if err := jsoncheck.Check([]byte(b.String()), depth); err != nil {
		t.Fatalf("Check = %v, want nil", err)
	}
}

// typicalBody is about 1 KiB, shaped like a create request.
var typicalBody = []byte(`{
  "name": "Quarterly planning",
  "description": "Agenda, owners and dates for the next quarter. Café ☕ included.",
  "visibility": "workspace",
  "owner_id": "usr_01j9z3k4m5n6p7q8r9s0t1v2w3",
  "due_at": "2025-06-30T17:00:00Z",
  "budget": {"amount": 125000, "currency": "EUR", "approved": true},
  "tags": ["planning", "q3", "finance", "roadmap"],
  "members": [
    {"id": "usr_01j9z3k4m5n6p7q8r9s0t1v2w4", "role": "editor", "notify": true},
    {"id": "usr_01j9z3k4m5n6p7q8r9s0t1v2w5", "role": "viewer", "notify": false},
    {"id": "usr_01j9z3k4m5n6p7q8r9s0t1v2w6", "role": "viewer", "notify": false}
  ],
  "milestones": [
    {"title": "Draft", "weight": 0.25, "date": "2025-04-15"},
    {"title": "Review", "weight": 0.5, "date": "2025-05-15"},
    {"title": "Final", "weight": 0.25, "date": "2025-06-15"}
  ],
  "settings": {"reminders": [7, 3, 1], "timezone": "Europe/Paris", "escaped": "line\nbreak \"quoted\" \u00e9"},
  "metadata": {"source": "api", "client": "atrium-cli/1.4.2", "note": null}
}`)

func TestTypicalBody(t *testing.T) {
	if n := len(typicalBody); n < 900 || n > 1200 {
		t.Fatalf("typical body is %d bytes, want about 1 KiB", n)
	}
	if err := jsoncheck.Check(typicalBody, 32); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() { _ = jsoncheck.Check(typicalBody, 32) }); n > 1 {
		t.Errorf("Check allocates %v times for a typical body, want at most 1", n)
	}
}

func BenchmarkCheck(b *testing.B) {
	b.SetBytes(int64(len(typicalBody)))
	b.ReportAllocs()
	for b.Loop() {
		if err := jsoncheck.Check(typicalBody, 32); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzCheck compares Check with encoding/json: whatever Check accepts,
// encoding/json accepts; whatever encoding/json accepts, Check refuses only
// for a reason encoding/json does not look at, and that reason is really there.
// A malformed body may be refused for such a reason too, when it comes first.
func FuzzCheck(f *testing.F) {
	for _, seed := range []string{
		``, `{}`, `[]`, `null`, `{"a":1,"a":2}`, `[[[[[[]]]]]]`, `{"a":"\ud83d\ude00"}`,
		`{"a":[1,2,{"b":null}],"c":"\u0061"}`, "\"\xff\"", `1.5e+10`, `{}{}`, `{"a":"\ud800"}`,
		"\"\xc3", `{"a":1,"a":`, `[[[[[[`,
		string(typicalBody),
	} {
		f.Add([]byte(seed))
	}
	const maxDepth = 5
	f.Fuzz(func(t *testing.T, body []byte) {
		err := jsoncheck.Check(body, maxDepth)
		valid := json.Valid(body)
		if err == nil {
			if !valid {
				t.Fatalf("Check accepted %q, json.Valid refuses it", body)
			}
			if !utf8.Valid(body) {
				t.Fatalf("Check accepted invalid UTF-8 %q", body)
			}
			dup, deepest := reference(t, body)
			if dup || deepest > maxDepth {
				t.Fatalf("Check accepted %q: duplicate %v, depth %d", body, dup, deepest)
			}
			// Numbers stay text: a value out of float64's range is the
			// handler's business, not a syntax error.
			dec := json.NewDecoder(bytes.NewReader(body))
			dec.UseNumber()
			var v any
			if err := dec.Decode(&v); err != nil {
				t.Fatalf("Check accepted %q, encoding/json refuses it: %v", body, err)
			}
			return
		}
		var e *kernel.Error
		if !errors.As(err, &e) || e.Code != kernel.CodeInvalid || len(e.Fields) != 1 {
			t.Fatalf("Check(%q) = %#v, want an invalid kernel.Error with one field", body, err)
		}
		for field, msg := range e.Fields {
			if msg != e.Message || !strings.HasPrefix(field, "body") || !utf8.ValidString(field) || !utf8.ValidString(msg) {
				t.Fatalf("Check(%q): field %q message %q", body, field, msg)
			}
		}
		switch {
		case strings.HasPrefix(e.Message, "malformed JSON at byte "),
			e.Message == "unexpected data after the JSON value",
			e.Message == "a JSON body is required":
			if valid {
				t.Fatalf("Check(%q) = %v, but json.Valid accepts it", body, err)
			}
		case e.Message == "duplicate key":
			// A body that is also malformed further on cannot go through
			// the reference, which needs valid JSON.
			if valid && !referenceDup(t, body) {
				t.Fatalf("Check(%q) found a duplicate the reference does not", body)
			}
		case e.Message == "nested too deeply":
			if valid && referenceDepth(t, body) <= maxDepth {
				t.Fatalf("Check(%q) = too deep, reference depth %d", body, referenceDepth(t, body))
			}
		case e.Message == "invalid UTF-8":
			if utf8.Valid(body) && !bytes.Contains(bytes.ToLower(body), []byte(`\ud`)) {
				t.Fatalf("Check(%q) found invalid UTF-8 in valid UTF-8 with no surrogate escape", body)
			}
		default:
			t.Fatalf("Check(%q) = unexpected message %q", body, e.Message)
		}
	})
}

func referenceDup(t *testing.T, body []byte) bool {
	dup, _ := reference(t, body)
	return dup
}

func referenceDepth(t *testing.T, body []byte) int {
	_, deepest := reference(t, body)
	return deepest
}

// reference walks a body that json.Valid accepts with encoding/json's token
// stream and reports whether any object repeats a key and how deeply it nests.
func reference(t *testing.T, body []byte) (dup bool, deepest int) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	type level struct {
		keys      map[string]bool
		expectKey bool
	}
	var stack []*level
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return dup, deepest
		}
		if err != nil {
			t.Fatalf("reference: %v", err)
		}
		var top *level
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if d, ok := tok.(json.Delim); ok {
			switch d {
			case '{', '[':
				if top != nil && top.keys != nil {
					top.expectKey = true
				}
				stack = append(stack, &level{})
				if d == '{' {
					stack[len(stack)-1].keys = map[string]bool{}
					stack[len(stack)-1].expectKey = true
				}
				deepest = max(deepest, len(stack))
			default:
				stack = stack[:len(stack)-1]
			}
			continue
		}
		if top == nil || top.keys == nil {
			continue
		}
		if top.expectKey {
			key := tok.(string)
			dup = dup || top.keys[key]
			top.keys[key] = true
		}
		top.expectKey = !top.expectKey
	}
}

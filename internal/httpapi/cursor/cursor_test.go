package cursor_test

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"atrium/internal/httpapi/cursor"
	"atrium/internal/kernel"
)

type sortKey struct {
	CreatedAt time.Time
	ID        string
}

const scope = "audit_log:ws_01j9z3k4m5n6p7q8r9s0t1v2w3"

func testSigner(t testing.TB) *cursor.Signer {
	t.Helper()
	return cursor.NewSigner(bytes.Repeat([]byte{0x5a}, 32))
}

func sampleKey() sortKey {
	return sortKey{
		CreatedAt: time.Date(2025, 3, 14, 15, 9, 26, 535897932, time.UTC),
		ID:        "evt_01j9z3k4m5n6p7q8r9s0t1v2w3",
	}
}

// wantInvalid fails the test unless err is the one answer Decode gives for a
// cursor it refuses.
func wantInvalid(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		t.Fatal("Decode accepted the cursor, want an invalid error")
	}
	e := kernel.As(err)
	if e.Code != kernel.CodeInvalid || e.Code.Status() != 400 {
		t.Fatalf("code = %q (status %d), want invalid (400); err = %v", e.Code, e.Code.Status(), err)
	}
	const msg = "cursor is invalid or belongs to another list"
	if e.Message != msg || len(e.Fields) != 1 || e.Fields["query.cursor"] != msg {
		t.Fatalf("error = %q fields %v, want %q on query.cursor", e.Message, e.Fields, msg)
	}
}

func TestRoundTrip(t *testing.T) {
	s := testSigner(t)
	want := sampleKey()
	c := s.Encode(scope, want)
	if c == "" || len(c) > cursor.MaxLen {
		t.Fatalf("cursor length %d out of range", len(c))
	}
	if strings.ContainsAny(c, "+/=") {
		t.Fatalf("cursor %q is not unpadded base64url", c)
	}
	var got sortKey
	if err := s.Decode(scope, c, &got); err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if !got.CreatedAt.Equal(want.CreatedAt) || got.ID != want.ID {
		t.Fatalf("round trip = %+v, want %+v", got, want)
	}
	if again := s.Encode(scope, got); again != c {
		t.Fatalf("encoding is not deterministic: %q then %q", c, again)
	}
}

func TestRoundTripScalar(t *testing.T) {
	s := testSigner(t)
	c := s.Encode("members:ws_1", "usr_42")
	var got string
	if err := s.Decode("members:ws_1", c, &got); err != nil || got != "usr_42" {
		t.Fatalf("Decode = %q, %v; want usr_42, nil", got, err)
	}
}

func TestDecodeRejectsEveryChangedCharacter(t *testing.T) {
	s := testSigner(t)
	c := s.Encode(scope, sampleKey())
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_+/=.\n\r \x00"
	for i := range len(c) {
		for _, r := range []byte(alphabet) {
			if r == c[i] {
				continue
			}
			bad := c[:i] + string(r) + c[i+1:]
			var v sortKey
			err := s.Decode(scope, bad, &v)
			if err == nil {
				t.Fatalf("Decode accepted %q with byte %d changed to %q", bad, i, r)
			}
			wantInvalid(t, err)
		}
	}
}

func TestDecodeRejectsEveryFlippedBit(t *testing.T) {
	s := testSigner(t)
	raw, err := base64.RawURLEncoding.DecodeString(s.Encode(scope, sampleKey()))
	if err != nil {
		t.Fatal(err)
	}
	for i := range raw {
		for bit := range 8 {
			bad := bytes.Clone(raw)
			bad[i] ^= 1 << bit
			var v sortKey
			wantInvalid(t, s.Decode(scope, base64.RawURLEncoding.EncodeToString(bad), &v))
		}
	}
}

func TestDecodeRejectsTruncatedAndExtended(t *testing.T) {
	s := testSigner(t)
	c := s.Encode(scope, sampleKey())
	for n := range len(c) {
		var v sortKey
		wantInvalid(t, s.Decode(scope, c[:n], &v))
		wantInvalid(t, s.Decode(scope, c[n+1:], &v))
	}
	for _, suffix := range []string{"A", "AA", "AAAA", "=", "=="} {
		var v sortKey
		wantInvalid(t, s.Decode(scope, c+suffix, &v))
	}
}

func TestDecodeRejectsForeignScope(t *testing.T) {
	s := testSigner(t)
	c := s.Encode("audit_log:ws_a", sampleKey())
	for _, other := range []string{
		"audit_log:ws_b",  // another workspace
		"members:ws_a",    // another list
		"audit_log:ws_a ", // near miss
		"audit_log:ws",
		"",
	} {
		var v sortKey
		t.Run(fmt.Sprintf("%q", other), func(t *testing.T) {
			wantInvalid(t, s.Decode(other, c, &v))
		})
	}
}

// The scope and the payload are separated by a zero byte; moving that boundary
// must not produce a cursor that verifies.
func TestDecodeRejectsScopeBoundaryShift(t *testing.T) {
	s := testSigner(t)
	c := s.Encode("a", "b")
	var v string
	wantInvalid(t, s.Decode("a\x00", c, &v))
	wantInvalid(t, s.Decode("", c, &v))
}

func TestDecodeRejectsAnotherKey(t *testing.T) {
	c := testSigner(t).Encode(scope, sampleKey())
	other := cursor.NewSigner(bytes.Repeat([]byte{0x5b}, 32))
	var v sortKey
	wantInvalid(t, other.Decode(scope, c, &v))
	longer := cursor.NewSigner(bytes.Repeat([]byte{0x5a}, 33))
	wantInvalid(t, longer.Decode(scope, c, &v))
}

func TestDecodeRejectsGarbage(t *testing.T) {
	s := testSigner(t)
	valid := s.Encode(scope, sampleKey())
	for name, c := range map[string]string{
		"empty":          "",
		"one char":       "A",
		"not base64":     "!!!!",
		"padding":        valid + "==",
		"std alphabet":   strings.NewReplacer("-", "+", "_", "/").Replace(valid) + "+/",
		"newline inside": valid[:10] + "\n" + valid[10:],
		"mac only":       base64.RawURLEncoding.EncodeToString(make([]byte, 16)),
		"unsigned json":  base64.RawURLEncoding.EncodeToString([]byte(`{"ID":"x"}`)),
		"huge":           strings.Repeat("A", cursor.MaxLen+1),
		"very huge":      strings.Repeat(valid, 1000),
		"nul":            "\x00",
		"unicode":        "é" + valid,
	} {
		t.Run(name, func(t *testing.T) {
			var v sortKey
			wantInvalid(t, s.Decode(scope, c, &v))
		})
	}
}

// A cursor signed for an older shape of the sort key must not half-decode into
// the new one.
func TestDecodeRejectsUnknownFields(t *testing.T) {
	s := testSigner(t)
	c := s.Encode(scope, struct {
		CreatedAt time.Time
		ID        string
		Rank      int
	}{ID: "x", Rank: 3})
	var v sortKey
	wantInvalid(t, s.Decode(scope, c, &v))
}

func TestDecodeRejectsWrongType(t *testing.T) {
	s := testSigner(t)
	c := s.Encode(scope, []int{1, 2})
	var v sortKey
	wantInvalid(t, s.Decode(scope, c, &v))
}

func TestNewSignerRefusesShortKey(t *testing.T) {
	for _, n := range []int{0, 1, 16, 31} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatalf("NewSigner accepted a %d-byte key", n)
				}
			}()
			cursor.NewSigner(make([]byte, n))
		})
	}
}

func TestNewSignerCopiesKey(t *testing.T) {
	key := bytes.Repeat([]byte{1}, 32)
	s := cursor.NewSigner(key)
	c := s.Encode(scope, "x")
	key[0] = 2
	var v string
	if err := s.Decode(scope, c, &v); err != nil {
		t.Fatalf("changing the caller's key slice changed the signer: %v", err)
	}
}

func TestEncodePanicsOnOversizeKey(t *testing.T) {
	s := testSigner(t)
	defer func() {
		if recover() == nil {
			t.Fatal("Encode made a cursor that Decode would refuse")
		}
	}()
	s.Encode(scope, strings.Repeat("x", cursor.MaxLen))
}

func TestEncodeLargestAcceptedKey(t *testing.T) {
	s := testSigner(t)
	// 1024 base64 characters carry 768 bytes: 16 of MAC, 752 of JSON, so a
	// string of 750 characters plus its quotes is the largest that fits.
	v := strings.Repeat("x", 750)
	c := s.Encode(scope, v)
	if len(c) != cursor.MaxLen {
		t.Fatalf("len = %d, want %d", len(c), cursor.MaxLen)
	}
	var got string
	if err := s.Decode(scope, c, &got); err != nil || got != v {
		t.Fatalf("Decode: %v", err)
	}
}

func TestSignerConcurrentUse(t *testing.T) {
	s := testSigner(t)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 100 {
				id := fmt.Sprintf("usr_%d_%d", i, j)
				var got string
				if err := s.Decode(scope, s.Encode(scope, id), &got); err != nil || got != id {
					t.Errorf("Decode = %q, %v; want %q", got, err, id)
				}
			}
		})
	}
	wg.Wait()
}

func TestParseLimit(t *testing.T) {
	for _, tc := range []struct {
		raw  string
		want int
	}{
		{"", cursor.DefaultLimit},
		{"1", 1},
		{"20", 20},
		{"99", 99},
		{"100", 100},
		{"101", cursor.MaxLimit}, // capped, not refused
		{"1000000", cursor.MaxLimit},
		{"99999999999999999999999", cursor.MaxLimit},
	} {
		got, err := cursor.ParseLimit(tc.raw)
		if err != nil || got != tc.want {
			t.Errorf("ParseLimit(%q) = %d, %v; want %d, nil", tc.raw, got, err, tc.want)
		}
	}
	for _, raw := range []string{"0", "-1", "-0", "-99999999999999999999999", "abc", "1.5", "1e2", " 5", "5 ", "0x10", "twenty"} {
		got, err := cursor.ParseLimit(raw)
		e := kernel.As(err)
		if err == nil || e.Code != kernel.CodeInvalid || e.Fields["query.limit"] == "" {
			t.Errorf("ParseLimit(%q) = %d, %v; want an invalid error on query.limit", raw, got, err)
		}
	}
}

func TestTrim(t *testing.T) {
	for _, tc := range []struct {
		items    []int
		limit    int
		want     []int
		wantMore bool
	}{
		{nil, 20, nil, false},
		{[]int{}, 20, []int{}, false},
		{[]int{1, 2}, 3, []int{1, 2}, false},
		{[]int{1, 2, 3}, 3, []int{1, 2, 3}, false},
		{[]int{1, 2, 3, 4}, 3, []int{1, 2, 3}, true},
		{[]int{1, 2, 3, 4}, 0, []int{}, true},
		{[]int{1}, -1, []int{}, true},
	} {
		got, more := cursor.Trim(tc.items, tc.limit)
		if fmt.Sprint(got) != fmt.Sprint(tc.want) || more != tc.wantMore {
			t.Errorf("Trim(%v, %d) = %v, %v; want %v, %v", tc.items, tc.limit, got, more, tc.want, tc.wantMore)
		}
	}
}

func TestTrimDoesNotExposeExtraRow(t *testing.T) {
	items := []string{"a", "b", "c"}
	page, _ := cursor.Trim(items, 2)
	_ = append(page, "z")
	if items[2] != "c" {
		t.Fatalf("appending to the page overwrote the extra row: %v", items)
	}
}

func FuzzDecode(f *testing.F) {
	s := testSigner(f)
	f.Add(scope, s.Encode(scope, sampleKey()))
	f.Add("members:ws_1", s.Encode("members:ws_1", sortKey{ID: "usr_1"}))
	f.Add(scope, s.Encode(scope, nil))
	f.Add("", "")
	f.Add(scope, "AAAA")
	f.Add(scope, strings.Repeat("_", cursor.MaxLen+1))
	f.Fuzz(func(t *testing.T, scope, c string) {
		var v sortKey
		err := s.Decode(scope, c, &v)
		if err != nil {
			wantInvalid(t, err)
			return
		}
		// Only a cursor we made can verify, and each has one spelling, so
		// encoding what it held must give it back exactly.
		if again := s.Encode(scope, v); again != c && c != s.Encode(scope, nil) {
			t.Fatalf("Decode accepted %q, which Encode spells %q", c, again)
		}
	})
}

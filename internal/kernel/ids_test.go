package kernel

import (
	"testing"

	"github.com/google/uuid"
)

func TestFormatIDMatchesTypeIDSpec(t *testing.T) {
	// Vectors from the TypeID specification's valid.yml.
	cases := []struct{ uuid, typeid string }{
		{"00000000-0000-0000-0000-000000000000", "ws_00000000000000000000000000"},
		{"00000000-0000-0000-0000-000000000001", "ws_00000000000000000000000001"},
		{"00000000-0000-0000-0000-00000000000a", "ws_0000000000000000000000000a"},
		{"00000000-0000-0000-0000-000000000020", "ws_00000000000000000000000010"},
		{"ffffffff-ffff-ffff-ffff-ffffffffffff", "ws_7zzzzzzzzzzzzzzzzzzzzzzzzz"},
		{"01890a5d-ac96-774b-bcce-b302099a8057", "ws_01h455vb4pex5vsknk084sn02q"},
	}
	for _, c := range cases {
		u := uuid.MustParse(c.uuid)
		if got := FormatID("ws", u); got != c.typeid {
			t.Errorf("FormatID(%s) = %s, want %s", c.uuid, got, c.typeid)
		}
		back, err := ParseID("ws", c.typeid)
		if err != nil || back != u {
			t.Errorf("ParseID(%s) = %s, %v; want %s", c.typeid, back, err, u)
		}
	}
}

func TestParseIDRejectsHostileInput(t *testing.T) {
	good := FormatID("ws", NewID())
	for _, s := range []string{
		"", "ws_", "usr" + good[2:], good[3:], good + "0", good[:len(good)-1],
		"ws_8zzzzzzzzzzzzzzzzzzzzzzzzz", // overflows 128 bits
		"ws_01h455vb4pex5vsknk084sn0iq", // 'i' is not in the alphabet
		"ws_01H455VB4PEX5VSKNK084SN02Q", // upper case is not canonical
		"ws-01h455vb4pex5vsknk084sn02q",
		"ws_01h455vb4pex5vsknk084sn0\x00q",
		"ws_" + "01890a5d-ac96-774b-bcce-b302099a8057",
	} {
		if _, err := ParseID("ws", s); !IsCode(err, CodeInvalid) {
			t.Errorf("ParseID(%q) err = %v, want invalid", s, err)
		}
	}
}

func TestNewIDIsVersion7AndOrdered(t *testing.T) {
	a, b := NewID(), NewID()
	if a.Version() != 7 {
		t.Fatalf("version %d", a.Version())
	}
	if FormatID("x", a) >= FormatID("x", b) {
		t.Fatalf("IDs not ordered: %s then %s", a, b)
	}
}

package mailtest

import (
	"bytes"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	netmail "net/mail"
	"strings"
	"testing"

	"atrium/internal/mail"
)

// ParseMIME reads raw, a message as mail.BuildMIME writes it, the way a mail
// client would, and returns it as a Message (To formatted from the header,
// subject decoded, parts decoded with line ends as LF, no tag) with its header.
// It fails t on anything that is not well-formed: a line over 998 characters or
// with a bare CR or LF, a body that is not multipart/alternative holding
// exactly a text/plain and then a text/html part, each UTF-8 and
// quoted-printable.
func ParseMIME(t testing.TB, raw []byte) (mail.Message, netmail.Header) {
	t.Helper()
	if !bytes.HasSuffix(raw, []byte("\r\n")) {
		t.Errorf("message does not end with CRLF")
	}
	for i, line := range bytes.SplitAfter(raw, []byte("\r\n")) {
		if len(line) > 1000 {
			t.Errorf("line %d is %d characters long, over RFC 5322's 998", i+1, len(line)-2)
		}
		if bytes.ContainsAny(bytes.TrimSuffix(line, []byte("\r\n")), "\r\n") {
			t.Errorf("line %d holds a bare CR or LF: %q", i+1, line)
		}
	}
	msg, err := netmail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("read message: %v", err)
	}
	var m mail.Message
	dec := new(mime.WordDecoder)
	if m.Subject, err = dec.DecodeHeader(msg.Header.Get("Subject")); err != nil {
		t.Fatalf("decode Subject %q: %v", msg.Header.Get("Subject"), err)
	}
	to, err := msg.Header.AddressList("To")
	if err != nil {
		t.Fatalf("To %q: %v", msg.Header.Get("To"), err)
	}
	for _, a := range to {
		m.To = append(m.To, a.String())
	}

	mediaType, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil || mediaType != "multipart/alternative" {
		t.Fatalf("Content-Type %q (%v), want multipart/alternative", msg.Header.Get("Content-Type"), err)
	}
	want := []string{"text/plain; charset=utf-8", "text/html; charset=utf-8"}
	parts := multipart.NewReader(msg.Body, params["boundary"])
	for i := 0; ; i++ {
		p, err := parts.NextRawPart() // NextPart would decode and drop the encoding header
		if err == io.EOF {
			if i != len(want) {
				t.Fatalf("%d parts, want %d", i, len(want))
			}
			break
		}
		if err != nil {
			t.Fatalf("part %d: %v", i+1, err)
		}
		if i >= len(want) {
			t.Fatalf("more than %d parts", len(want))
		}
		if ct := p.Header.Get("Content-Type"); ct != want[i] {
			t.Errorf("part %d: Content-Type %q, want %q", i+1, ct, want[i])
		}
		if cte := p.Header.Get("Content-Transfer-Encoding"); cte != "quoted-printable" {
			t.Errorf("part %d: Content-Transfer-Encoding %q, want quoted-printable", i+1, cte)
		}
		body, err := io.ReadAll(quotedprintable.NewReader(p))
		if err != nil {
			t.Fatalf("part %d: decode: %v", i+1, err)
		}
		text := strings.ReplaceAll(string(body), "\r\n", "\n")
		if i == 0 {
			m.Text = text
		} else {
			m.HTML = text
		}
	}
	return m, msg.Header
}

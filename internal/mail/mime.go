package mail

import (
	"bytes"
	"fmt"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/textproto"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"atrium/internal/kernel"
)

// BuildMIME returns m as an RFC 5322 message ready for SMTP DATA, lines ending
// in CRLF: Date, From, To, Subject (RFC 2047 Q-encoded when it is not plain
// ASCII), Message-ID (<random UUID@the sender's domain>), MIME-Version,
// Auto-Submitted, and a multipart/alternative body holding a text/plain and a
// text/html part, both UTF-8 and quoted-printable. Long header values are
// folded. It returns an invalid *kernel.Error if m fails Validate or from is
// not a single valid address.
func BuildMIME(m Message, from string, date time.Time) ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	sender, err := ParseAddress(from)
	if err != nil {
		return nil, kernel.Invalid("from", "mail: sender: "+err.Error())
	}
	to := make([]string, len(m.To))
	for i, addr := range m.To {
		a, _ := ParseAddress(addr) // Validate parsed it already
		to[i] = a.String()
	}
	domain := sender.Address[strings.LastIndexByte(sender.Address, '@')+1:]

	var body bytes.Buffer
	parts := multipart.NewWriter(&body)
	if err := writePart(parts, "text/plain; charset=utf-8", m.Text); err != nil {
		return nil, err
	}
	if err := writePart(parts, "text/html; charset=utf-8", m.HTML); err != nil {
		return nil, err
	}
	if err := parts.Close(); err != nil {
		return nil, fmt.Errorf("mail: build: %w", err)
	}

	var b bytes.Buffer
	header := func(name, value string) { b.WriteString(name + ": " + value + "\r\n") }
	header("Date", date.Format(time.RFC1123Z))
	header("From", sender.String())
	header("To", strings.Join(to, ",\r\n "))
	header("Subject", encodeHeaderText(m.Subject, len("Subject: ")))
	header("Message-ID", "<"+uuid.NewString()+"@"+domain+">")
	header("MIME-Version", "1.0")
	header("Auto-Submitted", "auto-generated") // RFC 3834: no auto-replies, please
	header("Content-Type", mime.FormatMediaType("multipart/alternative", map[string]string{"boundary": parts.Boundary()}))
	b.WriteString("\r\n")
	b.Write(body.Bytes())
	return b.Bytes(), nil
}

func writePart(parts *multipart.Writer, contentType, content string) error {
	w, err := parts.CreatePart(textproto.MIMEHeader{
		"Content-Type":              {contentType},
		"Content-Transfer-Encoding": {"quoted-printable"},
	})
	if err != nil {
		return fmt.Errorf("mail: build: %w", err)
	}
	qp := quotedprintable.NewWriter(w) // also turns bare LF into CRLF
	if _, err := qp.Write([]byte(content)); err != nil {
		return fmt.Errorf("mail: build: %w", err)
	}
	if err := qp.Close(); err != nil {
		return fmt.Errorf("mail: build: %w", err)
	}
	return nil
}

// maxLine is the line length RFC 5322 asks senders to keep to; 998 is the hard limit.
const maxLine = 78

// encodeHeaderText renders an unstructured header value (the subject) that
// Validate has accepted. Plain ASCII is folded at spaces. Anything else, and
// ASCII that merely looks like an encoded word ("=?"), becomes Q-encoded words
// of at most 75 characters (RFC 2047), one per folded line, never splitting a
// character. used is the length of the header name already on the first line.
func encodeHeaderText(s string, used int) string {
	if !needsEncoding(s) {
		return foldAtSpaces(s, used)
	}
	const prefix, suffix, maxWord = "=?utf-8?q?", "?=", 75
	var words []string
	var w strings.Builder
	w.WriteString(prefix)
	var buf [utf8.UTFMax]byte
	for _, r := range s {
		var chunk strings.Builder
		for _, c := range buf[:utf8.EncodeRune(buf[:], r)] {
			switch {
			case c == ' ':
				chunk.WriteByte('_')
			case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9',
				c == '!', c == '*', c == '+', c == '-', c == '/':
				chunk.WriteByte(c)
			default:
				fmt.Fprintf(&chunk, "=%02X", c)
			}
		}
		if w.Len()+chunk.Len()+len(suffix) > maxWord {
			words = append(words, w.String()+suffix)
			w.Reset()
			w.WriteString(prefix)
		}
		w.WriteString(chunk.String())
	}
	words = append(words, w.String()+suffix)
	return strings.Join(words, "\r\n ")
}

func needsEncoding(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] > '~' {
			return true
		}
	}
	return strings.Contains(s, "=?")
}

// foldAtSpaces breaks s before spaces so lines stay within maxLine where a
// space allows it; unfolding (removing each CRLF) gives s back exactly.
func foldAtSpaces(s string, used int) string {
	if used+len(s) <= maxLine {
		return s
	}
	var b strings.Builder
	lineLen := used
	for i, word := range strings.Split(s, " ") {
		if i > 0 {
			if lineLen+1+len(word) > maxLine && lineLen > 1 {
				b.WriteString("\r\n")
				lineLen = 0
			}
			b.WriteByte(' ')
			lineLen++
		}
		b.WriteString(word)
		lineLen += len(word)
	}
	return b.String()
}

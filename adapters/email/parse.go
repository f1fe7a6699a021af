package email

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"strings"
	"time"

	"github.com/emersion/go-message"
	_ "github.com/emersion/go-message/charset" // decodes ISO-8859-*, Windows-125*, Shift_JIS, …
	"github.com/emersion/go-message/mail"

	"github.com/switchboardhq/switchboard/envelope"
)

// Message is what the adapter reads from one mail.
type Message struct {
	// MessageID is the Message-ID without angle brackets; a message without
	// one gets "sha256-<hex>@switchboard.invalid" from its source.
	MessageID  string
	InReplyTo  []string
	References []string
	// From is the author; ReplyTo the Reply-To addresses, if any.
	From    *mail.Address
	ReplyTo []*mail.Address
	Subject string
	Date    time.Time
	// Body is the readable text of the preferred part (text/plain, else
	// text/html turned into text), before quotes and signatures are
	// stripped; Text is after.
	Body string
	Text string
	// Attachments lists the parts that are not the body, in order.
	Attachments []Attachment
	// Truncated is true when a text part was longer than the part limit.
	Truncated bool
	// Loop, when not empty, says why the message must not be acted on
	// (RFC 3834 and friends): "auto-submitted: auto-replied", "bulk mail", …
	Loop string
}

// Attachment is a part listed instead of inlined.
type Attachment struct {
	Name string `json:"name"`
	Type string `json:"type"`
	// Size is the decoded size in bytes.
	Size int64 `json:"size"`
}

// IsReply reports whether m answers an earlier message.
func (m *Message) IsReply() bool { return len(m.References) > 0 || len(m.InReplyTo) > 0 }

// ThreadRoot is the Message-ID of the thread's first message: the first of
// References, else the first of In-Reply-To, else m's own id.
func (m *Message) ThreadRoot() string {
	switch {
	case len(m.References) > 0:
		return m.References[0]
	case len(m.InReplyTo) > 0:
		return m.InReplyTo[0]
	}
	return m.MessageID
}

// maxIDLen bounds a Message-ID used in an envelope id; a longer one is
// replaced by a digest (envelope ids are at most 512 bytes).
const maxIDLen = 400

// Parse reads one message from its full source. It never fails on content
// it cannot understand (an unknown charset, a broken part): what it can read
// is kept. self is the gateway's own address, for loop detection; maxPart
// caps the bytes read from one text part.
func Parse(raw []byte, self string, maxPart int64) (*Message, error) {
	ent, err := message.Read(bytes.NewReader(raw))
	if err != nil && !message.IsUnknownCharset(err) && !message.IsUnknownEncoding(err) {
		return nil, fmt.Errorf("email: parse: %w", err)
	}
	h := mail.Header{Header: ent.Header}
	m := &Message{}
	m.MessageID = cleanID(h.Get("Message-Id"))
	if m.MessageID == "" {
		sum := sha256.Sum256(raw)
		m.MessageID = "sha256-" + hex.EncodeToString(sum[:16]) + "@switchboard.invalid"
	}
	m.References = msgIDs(h, "References")
	m.InReplyTo = msgIDs(h, "In-Reply-To")
	if from, err := h.AddressList("From"); err == nil && len(from) > 0 {
		m.From = from[0]
	} else if f := strings.TrimSpace(h.Get("From")); f != "" {
		// An address that net/mail rejects: keep what looks like one.
		m.From = &mail.Address{Address: looseAddress(f)}
	}
	m.ReplyTo, _ = h.AddressList("Reply-To")
	if s, err := h.Subject(); err == nil {
		m.Subject = strings.TrimSpace(s)
	} else {
		m.Subject = strings.TrimSpace(h.Get("Subject"))
	}
	// An encoded word may decode to a NUL or to bytes that are not UTF-8;
	// the subject goes into the envelope and the reply's Subject header.
	m.Subject = envelope.Clean(m.Subject)
	m.Date, _ = h.Date()
	m.Loop = loopReason(h, self, m.From)

	var plain, html *string
	walkErr := ent.Walk(func(_ []int, part *message.Entity, err error) error {
		if err != nil && !message.IsUnknownCharset(err) && !message.IsUnknownEncoding(err) {
			return err
		}
		mt, params, _ := part.Header.ContentType()
		if strings.HasPrefix(mt, "multipart/") {
			return nil
		}
		if mt == "" {
			mt = "text/plain"
		}
		disp, dparams, _ := part.Header.ContentDisposition()
		name := dparams["filename"]
		if name == "" {
			name = params["name"]
		}
		if name != "" {
			if dec, err := new(mime.WordDecoder).DecodeHeader(name); err == nil {
				name = dec
			}
		}
		isText := mt == "text/plain" || mt == "text/html"
		if isText && disp != "attachment" && name == "" && ((mt == "text/plain" && plain == nil) || (mt == "text/html" && html == nil)) {
			b, cut, err := readCapped(part.Body, maxPart)
			if err != nil {
				return nil // a broken part: skip it
			}
			m.Truncated = m.Truncated || cut
			s := toValidUTF8(b)
			if mt == "text/plain" {
				plain = &s
			} else {
				html = &s
			}
			return nil
		}
		n, _ := io.Copy(io.Discard, part.Body)
		if name == "" {
			name = "unnamed"
		}
		m.Attachments = append(m.Attachments, Attachment{Name: name, Type: mt, Size: n})
		return nil
	})
	// A broken MIME structure (a missing boundary, a truncated part) keeps
	// whatever was read before it.
	_ = walkErr
	switch {
	case plain != nil && strings.TrimSpace(*plain) != "":
		m.Body = normalize(*plain)
		m.Text = StripQuotes(m.Body)
	case html != nil:
		m.Body = normalize(HTMLToText(*html, false))
		m.Text = StripQuotes(normalize(HTMLToText(*html, true)))
	}
	return m, nil
}

// readCapped reads at most limit bytes of r, reporting whether there was
// more (limit <= 0 reads everything).
func readCapped(r io.Reader, limit int64) ([]byte, bool, error) {
	if limit <= 0 {
		b, err := io.ReadAll(r)
		return b, false, err
	}
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return b, false, err
	}
	if int64(len(b)) > limit {
		_, _ = io.Copy(io.Discard, r)
		return b[:limit], true, nil
	}
	return b, false, nil
}

// loopReason says why a message must not be acted on, or "".
func loopReason(h mail.Header, self string, from *mail.Address) string {
	if v := strings.ToLower(strings.TrimSpace(h.Get("Auto-Submitted"))); v != "" && !strings.HasPrefix(v, "no") {
		return "auto-submitted: " + v
	}
	if h.Has("X-Autoreply") || h.Has("X-Autorespond") {
		return "auto-reply header"
	}
	switch strings.ToLower(strings.TrimSpace(h.Get("Precedence"))) {
	case "bulk", "junk", "list":
		return "precedence: " + strings.ToLower(strings.TrimSpace(h.Get("Precedence")))
	}
	fields := h.Fields()
	for fields.Next() {
		if k := strings.ToLower(fields.Key()); strings.HasPrefix(k, "list-") {
			return "mailing list (" + fields.Key() + ")"
		}
	}
	if h.Has("Return-Path") {
		if rp := strings.TrimSpace(h.Get("Return-Path")); rp == "<>" || rp == "" {
			return "empty return path (a bounce)"
		}
	}
	if mt, _, _ := h.ContentType(); mt == "multipart/report" {
		return "delivery or disposition report"
	}
	if from != nil && self != "" && strings.EqualFold(from.Address, self) {
		return "from the gateway's own address"
	}
	return ""
}

// msgIDs reads a list of message ids, tolerating ids without brackets.
func msgIDs(h mail.Header, key string) []string {
	ids, err := h.MsgIDList(key)
	if err == nil {
		out := ids[:0]
		for _, id := range ids {
			if id = cleanID(id); id != "" {
				out = append(out, id)
			}
		}
		if len(out) > 0 {
			return out
		}
	}
	var out []string
	for _, f := range strings.Fields(h.Get(key)) {
		if id := cleanID(f); id != "" && strings.Contains(id, "@") {
			out = append(out, id)
		}
	}
	return out
}

// cleanID returns a Message-ID without brackets and surrounding space,
// replaced by a digest when it is too long to be an envelope id or not
// storable as text (8-bit bytes that are not UTF-8, a NUL): a digest, unlike
// replacing the bad bytes, keeps two such ids apart, and gives the same id
// wherever the Message-ID is named (References, In-Reply-To).
func cleanID(s string) string {
	s = strings.TrimSpace(s)
	s = strings.TrimPrefix(s, "<")
	s = strings.TrimSuffix(s, ">")
	s = strings.TrimSpace(s)
	if len(s) > maxIDLen || envelope.Clean(s) != s {
		sum := sha256.Sum256([]byte(s))
		return "sha256-" + hex.EncodeToString(sum[:16]) + "@switchboard.invalid"
	}
	return s
}

// looseAddress finds an address in a From header that net/mail rejects.
func looseAddress(s string) string {
	if i := strings.LastIndex(s, "<"); i >= 0 {
		if j := strings.Index(s[i:], ">"); j > 0 {
			return strings.TrimSpace(s[i+1 : i+j])
		}
	}
	for _, f := range strings.Fields(s) {
		if strings.Contains(f, "@") {
			return strings.Trim(f, "<>\"'(),;")
		}
	}
	return strings.TrimSpace(s)
}

// errTooLarge is returned for a message over Config.MaxMessage.
var errTooLarge = errors.New("message is larger than max_message")

package email

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/switchboardhq/switchboard/adapters"
	"github.com/switchboardhq/switchboard/adapters/internal/links"
	"github.com/switchboardhq/switchboard/envelope"
)

// RawJSON is the envelope's raw field for a message source: the source as a
// JSON string when it is valid UTF-8 without NUL bytes (every 7-bit message,
// and 8-bit UTF-8 mail), else {"base64": "<the source, standard base64>"},
// because a JSON string cannot hold arbitrary bytes and any other decoding
// (latin-1, say) would not give the original bytes back, and a "\u0000" in
// raw is what a text or jsonb column refuses. Either way the source is kept
// byte for byte.
func RawJSON(src []byte) json.RawMessage {
	if utf8.Valid(src) && bytes.IndexByte(src, 0) < 0 {
		b, _ := json.Marshal(string(src)) // a string always marshals
		return b
	}
	b, _ := json.Marshal(map[string]string{"base64": base64.StdEncoding.EncodeToString(src)})
	return b
}

// SourceFromRaw inverts RawJSON.
func SourceFromRaw(raw json.RawMessage) ([]byte, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return []byte(s), nil
	}
	var obj struct {
		Base64 *string `json:"base64"`
	}
	if err := json.Unmarshal(raw, &obj); err != nil || obj.Base64 == nil {
		return nil, fmt.Errorf("email: raw is neither a string nor {\"base64\": …}")
	}
	return base64.StdEncoding.DecodeString(*obj.Base64)
}

// subjectPrefix matches reply and forward prefixes, repeated.
func stripSubjectPrefixes(s string) string {
	for {
		t := strings.TrimSpace(s)
		lower := strings.ToLower(t)
		cut := false
		for _, p := range []string{"re:", "fwd:", "fw:", "aw:", "wg:", "sv:", "tr:", "re :"} {
			if strings.HasPrefix(lower, p) {
				t, cut = t[len(p):], true
				break
			}
		}
		if !cut {
			return t
		}
		s = t
	}
}

// convert maps a parsed message to what the router takes. where is the
// mailbox address; now stamps messages without a usable Date.
func convert(m *Message, src []byte, where string, now time.Time) adapters.Inbound {
	from := ""
	display := ""
	if m.From != nil {
		from = strings.ToLower(m.From.Address)
		display = m.From.Name
	}
	if from == "" {
		from = "unknown"
	}
	text := m.Text
	if !m.IsReply() && m.Subject != "" {
		if strings.TrimSpace(text) == "" {
			text = m.Subject
		} else {
			text = m.Subject + "\n\n" + text
		}
	}
	if m.Truncated {
		text += "\n\n[message cut: a part was longer than the size limit]"
	}
	if len(m.Attachments) > 0 {
		var b strings.Builder
		b.WriteString("\n\nAttachments:")
		for _, a := range m.Attachments {
			fmt.Fprintf(&b, "\n- %s (%s, %s)", a.Name, a.Type, humanSize(a.Size))
		}
		text += b.String()
	}
	text = strings.TrimSpace(text)
	if text == "" {
		text = "(empty message)"
	}
	refs := links.AddTo(nil, m.Subject+"\n"+m.Text)
	ts := m.Date
	if ts.IsZero() || ts.Year() > 9999 {
		ts = now // no Date, or one no store can hold
	}
	env := envelope.Envelope{
		ID:     Name + ":" + m.MessageID,
		Source: Name,
		Kind:   envelope.KindMessage,
		Actor: envelope.Actor{
			ID:      Name + ":" + from,
			Display: display,
			Type:    envelope.Human,
		},
		Conversation: envelope.Conversation{Source: Name, Ref: m.ThreadRoot()},
		Text:         text,
		Refs:         refs,
		TS:           ts.UTC(),
		Raw:          RawJSON(src),
	}
	env.Sanitize()
	return adapters.Inbound{
		Envelope: env,
		Facts: adapters.Facts{
			Where:     where,
			Addressed: true,
			Sender:    from,
			ChannelID: m.MessageID,
		},
	}
}

// humanSize formats n bytes as "512 B", "12.3 KB", "4.0 MB".
func humanSize(n int64) string {
	switch {
	case n < 1000:
		return fmt.Sprintf("%d B", n)
	case n < 1000*1000:
		return fmt.Sprintf("%.1f KB", float64(n)/1000)
	default:
		return fmt.Sprintf("%.1f MB", float64(n)/1000/1000)
	}
}

// inspect parses a message source and decides what to do with it: skip is
// empty when the message is to be handed to the router, else it says why
// not (a loop-prone message, a sender outside the allow-list). Only a
// message that cannot be parsed at all is an error.
func (a *Adapter) inspect(src []byte) (m *Message, in adapters.Inbound, skip string, err error) {
	if a.cfg.MaxMessage > 0 && int64(len(src)) > a.cfg.MaxMessage {
		return nil, in, "", errTooLarge
	}
	m, err = Parse(src, a.cfg.Address, a.cfg.MaxPart)
	if err != nil {
		return nil, in, "", err
	}
	in = convert(m, src, a.cfg.Address, a.now())
	switch {
	case m.Loop != "":
		return m, in, m.Loop, nil
	case !a.cfg.allowed(in.Facts.Sender):
		return m, in, "sender not allowed", nil
	}
	return m, in, "", nil
}

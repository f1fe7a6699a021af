package slack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/slack-go/slack"

	"github.com/switchboardhq/switchboard/adapters"
	"github.com/switchboardhq/switchboard/adapters/internal/hook"
	"github.com/switchboardhq/switchboard/envelope"
	"github.com/switchboardhq/switchboard/store"
)

// Live replies: edits, deletions and streams of the messages the adapter
// posted (issue #14).
//
// A message the adapter posted is known by the ts of its first part (the
// Receipt.ChannelID the router hands back as Delivery.Target). What an edit
// needs beyond that ts is a msgRecord, kept in the gateway's store (Deps.State)
// under "msg/<channel>/<ts>" and cached in memory: the ts of every part of a
// split message, and, for a message streamed with chat.startStream, whether
// the stream is still open and the text streamed so far. A message posted
// whole in one part has no record: its only part is the target.

// EditInterval is the least time between two changes of one message.
//
// chat.update is a Tier 3 method: about 50 calls a minute per workspace
// (https://docs.slack.dev/apis/web-api/rate-limits), and Slack asks for no
// more than about one message update a second. 1.2 s keeps one message's
// stream at 50 changes a minute, within Tier 3 on its own; several streams
// at once share the tier, and Slack's 429 with Retry-After then slows the
// outbox (adapters.BackOff).
const EditInterval = 1200 * time.Millisecond

// maxMarkdownText is the most markdown_text one chat.startStream,
// chat.appendStream, chat.stopStream or chat.update call takes (Slack's
// documented limit, 12,000 characters).
const maxMarkdownText = 12000

// assistantStatus is the status shown in an assistant thread while a turn
// runs (assistant.threads.setStatus).
const assistantStatus = "is thinking…"

// EditInterval returns EditInterval (see adapters.Editor).
func (a *Adapter) EditInterval() time.Duration { return EditInterval }

// messageGoneErrors are the Web API errors of chat.update, chat.delete and the
// stream methods that mean the message is not there any more: a person
// deleted it, or its channel is gone or out of the bot's reach.
// cant_update_message, cant_delete_message and edit_window_closed are not
// among them: the message is there but the bot may not change it
// (permanent).
var messageGoneErrors = map[string]bool{"message_not_found": true, "channel_not_found": true}

// classifyChange is classify for a change of an existing message: an error
// saying the message is gone wraps adapters.ErrGone.
func (a *Adapter) classifyChange(err error) error {
	if code := apiError(err); messageGoneErrors[code] {
		return fmt.Errorf("%w: %s", adapters.ErrGone, code)
	}
	return a.classify(err)
}

// refused reports whether err is a Web API error that a fallback can get
// around: Slack answered, and not with a rate limit, a server trouble, a
// credential problem or a missing message (message_not_in_streaming_state,
// channel_type_not_supported, missing_scope, unknown_method, …).
func refused(err error) bool {
	code := apiError(err)
	return code != "" && !authErrors[code] && !transientErrors[code] && !messageGoneErrors[code]
}

// msgRecord is what an edit needs to know about a posted message beyond its
// ts. Its zero value describes a message posted whole in one part with
// chat.postMessage.
type msgRecord struct {
	// Parts are the ts of the message's parts in order, the first the
	// message's own; empty for a single part.
	Parts []string `json:"parts,omitempty"`
	// Sums are a hash of each part's text as last sent, so that an edit
	// leaves unchanged parts alone ("" when unknown).
	Sums []string `json:"sums,omitempty"`
	// Markdown is set for a message sent as markdown_text (streamed): its
	// parts are changed with markdown_text too, since a chat.update with text
	// alone would keep the blocks Slack built from the markdown.
	Markdown bool `json:"md,omitempty"`
	// Stream is set while the chat.startStream of the message is not
	// stopped; Text is then the envelope text streamed so far.
	Stream bool   `json:"stream,omitempty"`
	Text   string `json:"text,omitempty"`
	// Sending is set while a chat.appendStream or chat.stopStream call is
	// made whose outcome is not known (saved before the call): the text the
	// stream holds if it landed. A record found with it set (the process
	// died during the call, or the call failed without saying whether
	// Slack took it) cannot say what the stream holds, so the next change
	// replaces the whole text instead of appending to it, which would
	// repeat text.
	Sending string `json:"sending,omitempty"`
}

// parts returns the record's part list, ts alone for a single part.
func (r *msgRecord) parts(ts string) []string {
	if len(r.Parts) == 0 {
		return []string{ts}
	}
	return r.Parts
}

// trivial reports whether r says nothing beyond the zero record.
func (r *msgRecord) trivial() bool {
	return len(r.Parts) <= 1 && !r.Markdown && !r.Stream
}

func recordKey(channel, ts string) string { return "msg/" + channel + "/" + ts }

// cachedRecord is a record as the memory holds it: stored says whether the
// store holds a non-empty value for it.
type cachedRecord struct {
	rec    msgRecord
	stored bool
}

// loadRecord returns the record of the message at ts in channel: from
// memory, else from the store, else the zero record.
func (a *Adapter) loadRecord(ctx context.Context, channel, ts string) (msgRecord, error) {
	key := recordKey(channel, ts)
	if c, ok := a.records.Get(key); ok {
		return c.rec, nil
	}
	if a.state == nil {
		return msgRecord{}, nil
	}
	b, err := a.state.Value(ctx, Name, key)
	switch {
	case errors.Is(err, store.ErrNotFound):
		a.records.Put(key, cachedRecord{})
		return msgRecord{}, nil
	case err != nil:
		return msgRecord{}, fmt.Errorf("slack: read the parts of message %s: %w", ts, err)
	}
	var r msgRecord
	if len(b) > 0 {
		if err := json.Unmarshal(b, &r); err != nil {
			a.log.Warn("unreadable record of a posted message; treating it as one part", "ts", ts, "err", err)
			r = msgRecord{}
		}
	}
	a.records.Put(key, cachedRecord{rec: r, stored: len(b) > 0})
	return r, nil
}

// saveRecord stores r as the record of the message at ts in channel. A
// trivial record is not stored, unless a record is stored already: it is
// then overwritten with an empty value (the store cannot delete). A store
// failure is logged, not returned: Slack has already changed the message,
// and the memory keeps the record for this process.
func (a *Adapter) saveRecord(ctx context.Context, channel, ts string, r msgRecord) {
	key := recordKey(channel, ts)
	prev, cached := a.records.Get(key)
	if a.state == nil {
		a.records.Put(key, cachedRecord{rec: r})
		return
	}
	var b []byte
	if !r.trivial() {
		var err error
		if b, err = json.Marshal(r); err != nil {
			a.log.Warn("record of a posted message not saved", "ts", ts, "err", err)
			return
		}
	} else if cached && !prev.stored {
		a.records.Put(key, cachedRecord{rec: r})
		return // nothing stored to clear
	}
	if err := a.state.SetValue(ctx, Name, key, b); err != nil {
		a.log.Warn("record of a posted message not saved; a later edit after a restart may miss parts", "ts", ts, "err", err)
		a.records.Put(key, cachedRecord{rec: r, stored: true}) // what the store holds is unknown
		return
	}
	a.records.Put(key, cachedRecord{rec: r, stored: len(b) > 0})
}

// sum is the hash of a part's text kept in msgRecord.Sums.
func sum(text string) string {
	h := fnv.New64a()
	_, _ = h.Write([]byte(text))
	return strconv.FormatUint(h.Sum64(), 36)
}

// sums returns the hashes of parts.
func sums(parts []string) []string {
	out := make([]string, len(parts))
	for i, p := range parts {
		out[i] = sum(p)
	}
	return out
}

// textOption sets a part's text: markdown_text for a Markdown message,
// text otherwise.
func textOption(markdown bool, text string) slack.MsgOption {
	if markdown {
		return slack.MsgOptionMarkdownText(text)
	}
	return slack.MsgOptionText(text, false)
}

// edit replaces the text of the message d.Target with d's text: by
// appending to its open stream when the new text extends what was streamed
// (stopping the stream when d is not partial), else with chat.update of
// each part whose text changed, posting the parts the new text adds and
// deleting the parts it no longer needs.
func (a *Adapter) edit(ctx context.Context, channel, thread string, d adapters.Delivery) (adapters.Receipt, error) {
	ts := d.Target
	rec, err := a.loadRecord(ctx, channel, ts)
	if err != nil {
		return adapters.Receipt{}, err
	}
	if rec.Stream {
		done, err := a.editStream(ctx, channel, ts, &rec, d.Envelope)
		if done || err != nil {
			return adapters.Receipt{ChannelID: ts}, err
		}
	}
	if err := a.update(ctx, channel, thread, ts, rec, d.Envelope.Text); err != nil {
		return adapters.Receipt{}, err
	}
	return adapters.Receipt{ChannelID: ts}, nil
}

// editStream changes the streamed message ts to env's text: an append of
// what env adds to the text streamed so far, and, when env is final, the
// stop of the stream. It reports done false, with rec's stream marked
// stopped, when the change must be made with chat.update instead: env's text
// does not extend the streamed text (the stream is then stopped first), it
// outgrows one message, or Slack refuses the stream call (the stream timed
// out, message_not_in_streaming_state, or any other refusal).
func (a *Adapter) editStream(ctx context.Context, channel, ts string, rec *msgRecord, env envelope.Envelope) (done bool, err error) {
	text, final := env.Text, !env.Partial()
	delta, extends := strings.CutPrefix(text, rec.Text)
	if extends && rec.Sending == "" && utf8.RuneCountInString(text) <= a.cfg.MaxChars && utf8.RuneCountInString(delta) <= maxMarkdownText {
		if delta == "" && !final {
			return true, nil
		}
		method := "chat.appendStream"
		sending := *rec
		sending.Sending = text
		a.saveRecord(ctx, channel, ts, sending)
		if final {
			method = "chat.stopStream"
			var opts []slack.MsgOption
			if delta != "" {
				opts = append(opts, slack.MsgOptionMarkdownText(delta))
			}
			_, _, err = a.api.StopStreamContext(ctx, channel, ts, opts...)
		} else {
			_, _, err = a.api.AppendStreamContext(ctx, channel, ts, slack.MsgOptionMarkdownText(delta))
		}
		if err == nil {
			rec.Text = text
			if final {
				rec.Stream, rec.Text = false, ""
			}
			a.saveRecord(ctx, channel, ts, *rec)
			return true, nil
		}
		cerr := a.classifyChange(err)
		var backOff *adapters.BackOff
		if refused(err) || errors.As(cerr, &backOff) {
			// Slack answered and did not take the text.
			a.saveRecord(ctx, channel, ts, *rec)
		}
		if !refused(err) {
			return true, fmt.Errorf("slack: %s: %w", method, cerr)
		}
		a.log.Info("slack refused a stream call; replacing the message's text instead", "method", method, "ts", ts, "error", apiError(err))
	} else {
		// The text was rewritten or outgrew one message: end the stream,
		// then replace the text.
		if _, _, err := a.api.StopStreamContext(ctx, channel, ts); err != nil && !refused(err) {
			return true, fmt.Errorf("slack: chat.stopStream: %w", a.classifyChange(err))
		}
	}
	rec.Stream, rec.Text = false, ""
	return false, nil
}

// update replaces the text of the message ts (described by rec) with text:
// chat.update of each part whose text changed, chat.postMessage of the
// parts the text adds (in the thread), chat.delete of the parts it no longer
// needs. The record is saved with what was done, also when a call fails, so
// that a retry goes on from there.
//
// A first part that is gone makes the error wrap adapters.ErrGone; a later
// part that is gone (a person deleted it) is replaced by new parts posted at
// the end of the thread.
func (a *Adapter) update(ctx context.Context, channel, thread, ts string, rec msgRecord, text string) error {
	var parts []string
	if rec.Markdown {
		parts = split(text, min(a.cfg.MaxChars, maxMarkdownText))
	} else {
		parts = split(toMrkdwn(text), a.cfg.MaxChars)
	}
	if len(parts) == 0 {
		return fmt.Errorf("slack: chat.update: %w: empty text", adapters.ErrPermanent)
	}
	old := rec.parts(ts)
	oldSum := func(i int) string {
		if i < len(rec.Sums) {
			return rec.Sums[i]
		}
		return ""
	}
	// done are the parts that now hold their text of parts (doneSums their
	// hashes); surplus the old parts still to delete.
	var done, doneSums, surplus []string
	// save stores what Slack now holds: the parts done, then the old parts
	// not reached yet, then the parts still to delete.
	save := func() {
		r := msgRecord{Markdown: rec.Markdown, Parts: append(append([]string{}, done...), old[min(len(done), len(old)):]...)}
		r.Sums = append([]string{}, doneSums...)
		for i := len(done); i < len(old); i++ {
			r.Sums = append(r.Sums, oldSum(i))
		}
		r.Parts = append(r.Parts, surplus...)
		for range surplus {
			r.Sums = append(r.Sums, "")
		}
		if len(r.Parts) == 1 {
			r.Parts, r.Sums = nil, nil
		}
		a.saveRecord(ctx, channel, ts, r)
	}
	for i, part := range parts {
		s := sum(part)
		if i < len(old) {
			if oldSum(i) == s {
				done, doneSums = append(done, old[i]), append(doneSums, s)
				continue
			}
			_, _, _, err := a.api.UpdateMessageContext(ctx, channel, old[i], textOption(rec.Markdown, part))
			if err == nil {
				a.health.Accept(credBot)
				done, doneSums = append(done, old[i]), append(doneSums, s)
				continue
			}
			cerr := a.classifyChange(err)
			if i == 0 || !errors.Is(cerr, adapters.ErrGone) || apiError(err) != "message_not_found" {
				save()
				return fmt.Errorf("slack: chat.update (part %d of %d): %w", i+1, len(parts), cerr)
			}
			a.log.Info("a part of a posted message was deleted; posting the rest anew", "ts", ts, "part", i+1)
			surplus = append(surplus, old[i+1:]...)
			old = old[:i]
		}
		opts := []slack.MsgOption{textOption(rec.Markdown, part)}
		if thread != "" {
			opts = append(opts, slack.MsgOptionTS(thread))
		}
		_, pts, err := a.api.PostMessageContext(ctx, channel, opts...)
		if err != nil {
			save()
			err = a.classify(err)
			a.metrics.posts.WithLabelValues(hook.PostResult(err)).Inc()
			return fmt.Errorf("slack: chat.postMessage (part %d of %d): %w", i+1, len(parts), err)
		}
		a.metrics.posts.WithLabelValues("ok").Inc()
		done, doneSums = append(done, pts), append(doneSums, s)
		save()
	}
	if len(old) > len(parts) {
		surplus = append(slices.Clone(old[len(parts):]), surplus...)
		old = old[:len(parts)]
	}
	for len(surplus) > 0 {
		if _, _, err := a.api.DeleteMessageContext(ctx, channel, surplus[0]); err != nil {
			if cerr := a.classifyChange(err); !errors.Is(cerr, adapters.ErrGone) {
				save()
				return fmt.Errorf("slack: chat.delete (a part no longer needed): %w", cerr)
			}
		}
		surplus = surplus[1:]
	}
	save()
	return nil
}

// withdraw deletes every part of the message d.Target, the later parts
// first. A message already gone gives an error wrapping adapters.ErrGone
// once its other parts are deleted.
func (a *Adapter) withdraw(ctx context.Context, channel string, d adapters.Delivery) (adapters.Receipt, error) {
	ts := d.Target
	rec, err := a.loadRecord(ctx, channel, ts)
	if err != nil {
		return adapters.Receipt{}, err
	}
	parts := rec.parts(ts)
	var gone error
	for i := len(parts) - 1; i >= 0; i-- {
		_, _, err := a.api.DeleteMessageContext(ctx, channel, parts[i])
		if err == nil {
			a.health.Accept(credBot)
			continue
		}
		cerr := a.classifyChange(err)
		if !errors.Is(cerr, adapters.ErrGone) {
			if i < len(parts)-1 {
				rec.Parts, rec.Sums = parts[:i+1], nil
				a.saveRecord(ctx, channel, ts, rec)
			}
			return adapters.Receipt{}, fmt.Errorf("slack: chat.delete (part %d of %d): %w", i+1, len(parts), cerr)
		}
		if i == 0 {
			gone = cerr
		}
	}
	a.saveRecord(ctx, channel, ts, msgRecord{})
	if gone != nil {
		return adapters.Receipt{}, fmt.Errorf("slack: chat.delete: %w", gone)
	}
	return adapters.Receipt{ChannelID: ts}, nil
}

// startStream posts the partial message d as a stream (chat.startStream)
// when it can: d goes to a thread, streaming is on and not refused in the
// channel, d is a first attempt (a retry posts whole, where chat.postMessage
// can find an earlier attempt's parts), its text fits one message, and,
// outside DMs, the adapter knows whom the stream answers (the last person
// who wrote in the thread, recorded as messages arrive: Slack requires the
// recipient in channels). It reports whether it handled d; when Slack
// refuses the stream it does not, the channel is remembered as refusing,
// and d is to be posted whole.
func (a *Adapter) startStream(ctx context.Context, channel, thread string, d adapters.Delivery) (adapters.Receipt, bool, error) {
	text := d.Envelope.Text
	switch {
	case thread == "" || !*a.cfg.Streaming || d.Attempt > 1,
		strings.TrimSpace(text) == "",
		utf8.RuneCountInString(text) > min(a.cfg.MaxChars, maxMarkdownText):
		return adapters.Receipt{}, false, nil
	}
	if _, no := a.noStream.Get(channel); no {
		return adapters.Receipt{}, false, nil
	}
	opts := []slack.MsgOption{slack.MsgOptionTS(thread), slack.MsgOptionMarkdownText(text)}
	if user, ok := a.askers.Get(d.To.Ref); ok {
		team, _, _ := strings.Cut(d.To.Ref, "/")
		opts = append(opts, slack.MsgOptionRecipientTeamID(team), slack.MsgOptionRecipientUserID(user))
	} else if !strings.HasPrefix(channel, "D") {
		return adapters.Receipt{}, false, nil
	}
	_, ts, err := a.api.StartStreamContext(ctx, channel, opts...)
	if err != nil {
		if refused(err) {
			a.noStream.Put(channel, true)
			a.log.Warn("slack refused chat.startStream; posting replies in this channel whole and editing them with chat.update",
				"channel", channel, "error", apiError(err))
			return adapters.Receipt{}, false, nil
		}
		return adapters.Receipt{}, true, fmt.Errorf("slack: chat.startStream: %w", a.classify(err))
	}
	a.health.Accept(credBot)
	a.saveRecord(ctx, channel, ts, msgRecord{Markdown: true, Stream: true, Text: text})
	return adapters.Receipt{ChannelID: ts}, true, nil
}

// noteAsker records who last wrote in a conversation, the recipient of a
// stream that answers there.
func (a *Adapter) noteAsker(in *adapters.Inbound) {
	if in.Envelope.Kind != envelope.KindMessage || in.Facts.FromBot || in.Facts.Sender == "" {
		return
	}
	a.askers.Put(in.Envelope.Conversation.Ref, in.Facts.Sender)
}

// setStatus sets (working) or clears the status of the assistant thread
// rooted at root in the DM channel.
func (a *Adapter) setStatus(ctx context.Context, channel, root string, working bool) error {
	status := ""
	if working {
		status = assistantStatus
	}
	err := a.api.SetAssistantThreadsStatusContext(ctx, slack.AssistantThreadsSetStatusParameters{ChannelID: channel, ThreadTS: root, Status: status})
	if err != nil {
		return fmt.Errorf("slack: assistant.threads.setStatus: %w", a.classify(err))
	}
	return nil
}

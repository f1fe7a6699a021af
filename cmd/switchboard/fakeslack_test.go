package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// slackAPI is a fake of the Slack Web API for the gateway binary, holding
// one workspace: what the Slack adapter calls to answer in threads and to
// change its answers, as https://docs.slack.dev/reference/methods/
// documents them.
//
//   - auth.test: the bot's identity; users.info: the users set in users.
//   - chat.postMessage (channel, thread_ts, text) and chat.startStream
//     (channel, thread_ts, markdown_text; recipient_team_id and
//     recipient_user_id required outside DMs) create a message of the bot;
//     chat.appendStream (markdown_text required) and chat.stopStream
//     (markdown_text optional) add to a streaming message and answer
//     message_not_in_streaming_state for any other; chat.update (text or
//     markdown_text) replaces a message's text, chat.delete removes it;
//     both answer message_not_found for no such message.
//   - conversations.history and conversations.replies list the messages
//     written with write and the bot's own (with its bot_id), after oldest
//     (exclusive), in one page.
//   - reactions.add and reactions.remove are accepted.
//
// Every other method is unknown_method; a request without the bot token
// is invalid_auth.
type slackAPI struct {
	srv                  *httptest.Server
	token                string
	team, botUser, botID string

	mu     sync.Mutex
	nextTS int
	msgs   []*slackMsg    // in ts order
	calls  map[string]int // method → requests answered ok
}

// slackMsg is a message the fake holds.
type slackMsg struct {
	Channel, Thread, TS, User, Text string
	Bot                             bool // written by the bot
	Streaming                       bool // started with chat.startStream, not stopped
}

func newSlackAPI(t *testing.T, token string) *slackAPI {
	f := &slackAPI{token: token, team: "T0LIVE", botUser: "U0BOT", botID: "B0BOT", calls: map[string]int{}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

// write adds a message a person wrote.
func (f *slackAPI) write(channel, thread, ts, user, text string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.msgs = append(f.msgs, &slackMsg{Channel: channel, Thread: thread, TS: ts, User: user, Text: text})
}

// botMessages returns copies of the bot's messages in channel.
func (f *slackAPI) botMessages(channel string) []slackMsg {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []slackMsg
	for _, m := range f.msgs {
		if m.Bot && m.Channel == channel {
			out = append(out, *m)
		}
	}
	return out
}

// count returns how many calls of the methods were answered ok.
func (f *slackAPI) count(methods ...string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, m := range methods {
		n += f.calls[m]
	}
	return n
}

func (f *slackAPI) find(channel, ts string) *slackMsg {
	for _, m := range f.msgs {
		if m.Channel == channel && m.TS == ts {
			return m
		}
	}
	return nil
}

func (f *slackAPI) serve(w http.ResponseWriter, r *http.Request) {
	method := strings.TrimPrefix(r.URL.Path, "/api/")
	body, _ := io.ReadAll(r.Body)
	form, _ := url.ParseQuery(string(body))
	for k, v := range r.URL.Query() {
		form[k] = v
	}
	token := cmp.Or(form.Get("token"), strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "))
	answer := func(v map[string]any) {
		if v["ok"] == true {
			f.calls[method]++
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(v)
	}
	fail := func(code string) { answer(map[string]any{"ok": false, "error": code}) }
	f.mu.Lock()
	defer f.mu.Unlock()
	if token != f.token {
		fail("invalid_auth")
		return
	}
	channel, ts := form.Get("channel"), form.Get("ts")
	switch method {
	case "auth.test":
		answer(map[string]any{"ok": true, "team_id": f.team, "user_id": f.botUser, "bot_id": f.botID, "team": "Live", "user": "switchboard"})
	case "users.info":
		u := form.Get("user")
		answer(map[string]any{"ok": true, "user": map[string]any{"id": u, "name": strings.ToLower(u), "profile": map[string]any{"display_name": u}}})
	case "reactions.add", "reactions.remove":
		answer(map[string]any{"ok": true})
	case "chat.postMessage", "chat.startStream":
		text := form.Get("text")
		if method == "chat.startStream" {
			text = form.Get("markdown_text")
			if !strings.HasPrefix(channel, "D") && (form.Get("recipient_user_id") == "" || form.Get("recipient_team_id") == "") {
				fail("missing_recipient_user_id")
				return
			}
		} else if text == "" {
			fail("no_text")
			return
		}
		f.nextTS++
		m := &slackMsg{Channel: channel, Thread: form.Get("thread_ts"), TS: fmt.Sprintf("1900000000.%06d", f.nextTS),
			Text: text, Bot: true, Streaming: method == "chat.startStream"}
		f.msgs = append(f.msgs, m)
		answer(map[string]any{"ok": true, "channel": channel, "ts": m.TS})
	case "chat.update", "chat.delete", "chat.appendStream", "chat.stopStream":
		m := f.find(channel, ts)
		switch {
		case m == nil:
			fail("message_not_found")
		case !m.Bot:
			fail(strings.Replace(method, "chat.", "cant_", 1) + "_message")
		case method == "chat.update":
			text := cmp.Or(form.Get("markdown_text"), form.Get("text"))
			if text == "" {
				fail("no_text")
				return
			}
			m.Text = text
			answer(map[string]any{"ok": true, "channel": channel, "ts": ts, "text": text})
		case method == "chat.delete":
			for i, x := range f.msgs {
				if x == m {
					f.msgs = append(f.msgs[:i], f.msgs[i+1:]...)
					break
				}
			}
			answer(map[string]any{"ok": true, "channel": channel, "ts": ts})
		case !m.Streaming:
			fail("message_not_in_streaming_state")
		case method == "chat.appendStream" && form.Get("markdown_text") == "":
			fail("no_text")
		default:
			m.Text += form.Get("markdown_text")
			m.Streaming = method == "chat.appendStream"
			answer(map[string]any{"ok": true, "channel": channel, "ts": ts})
		}
	case "conversations.history", "conversations.replies":
		root := form.Get("ts")
		var list []map[string]any
		found := method == "conversations.history"
		for _, m := range f.msgs {
			top := m.Thread == "" || m.Thread == m.TS
			switch {
			case m.Channel != channel:
				continue
			case method == "conversations.history" && !top:
				continue
			case method == "conversations.replies" && m.TS == root:
				found = true
			case method == "conversations.replies" && m.Thread != root:
				continue
			case form.Get("oldest") != "" && !tsAfter(m.TS, form.Get("oldest")):
				continue
			}
			e := map[string]any{"type": "message", "text": m.Text, "ts": m.TS}
			if m.Thread != "" {
				e["thread_ts"] = m.Thread
			}
			if m.Bot {
				e["bot_id"], e["user"] = f.botID, f.botUser
			} else {
				e["user"] = m.User
			}
			list = append(list, e)
		}
		if !found {
			fail("thread_not_found")
			return
		}
		if method == "conversations.history" {
			sort.SliceStable(list, func(i, j int) bool { return tsAfter(list[i]["ts"].(string), list[j]["ts"].(string)) })
		}
		answer(map[string]any{"ok": true, "messages": list, "has_more": false, "response_metadata": map[string]any{"next_cursor": ""}})
	default:
		fail("unknown_method")
	}
}

// tsAfter reports whether Slack timestamp a is after b.
func tsAfter(a, b string) bool {
	x, _ := strconv.ParseFloat(a, 64)
	y, _ := strconv.ParseFloat(b, 64)
	return x > y
}

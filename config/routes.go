package config

import (
	"fmt"
	"path"
	"time"

	"github.com/switchboardhq/switchboard/config/duration"
	"github.com/switchboardhq/switchboard/router/runtime"
	"github.com/switchboardhq/switchboard/webhook"
)

// Router configures how inbound messages find sessions and how sessions
// reach agents.
type Router struct {
	// DefaultRoute names the route whose runtime serves sessions that no
	// route created (sessions made with POST /v3/sessions). Empty: those
	// sessions use the inbox runtime.
	DefaultRoute string `yaml:"default_route"`
	// MaxParallel bounds how many sessions run at once (default 8).
	MaxParallel int `yaml:"max_parallel"`
	// Outbox tunes output delivery.
	Outbox Outbox `yaml:"outbox"`
	// Lease is how long a process holds a session's work or a delivery
	// without renewing it; after a crash, others take the work over once it
	// expires (default 30s).
	Lease Duration `yaml:"lease"`
	// SessionKey signs the session-scoped tokens handed to agents (exec
	// runtime). Replicas sharing a store must share it; when empty, each
	// process makes a random one at start. At least MinSecretLen bytes.
	SessionKey string `yaml:"session_key"`
}

// Outbox tunes the delivery of outputs to channels.
type Outbox struct {
	// MaxAttempts before a delivery is dead (default 12).
	MaxAttempts int `yaml:"max_attempts"`
	// MaxAge after which a failing delivery is dead (default 24h).
	MaxAge Duration `yaml:"max_age"`
	// Backoff is the first retry delay (default 1s), doubled per attempt up
	// to MaxBackoff (default 10m), with jitter.
	Backoff    Duration `yaml:"backoff"`
	MaxBackoff Duration `yaml:"max_backoff"`
	// Workers deliver in parallel (default 512), each to one conversation
	// at a time: deliveries to one conversation are never parallel, so
	// Workers bounds the conversations delivered to at once. A webhook
	// destination has a conversation per session: ten destinations over
	// 32 sessions are 320, and with 32 workers fan-out stalled at about
	// 4,000 events a second on a 2-core machine. A worker posts a webhook
	// conversation's queue in runs of up to 16, settled in one commit; while
	// more conversations are due than there are workers, it moves on to the
	// oldest due delivery of any after a run, so that the conversations
	// take turns. Those 320 conversations at 500 messages a second got
	// their events with p99 175-206 ms from 512 workers, 544-644 ms from
	// 256 (taking turns), and no better from 1,024. A worker waiting on a
	// post is a goroutine and a connection.
	Workers int `yaml:"workers"`
}

// Route is one rule: which inbound messages it takes (Match), how it keys
// sessions (Session), and how those sessions reach an agent (Runtime).
type Route struct {
	Name    string       `yaml:"name"`
	Match   Match        `yaml:"match"`
	Session SessionKey   `yaml:"session"`
	Runtime string       `yaml:"runtime"` // inbox (default), exec or http
	Exec    *ExecRuntime `yaml:"exec"`
	HTTP    *HTTPRuntime `yaml:"http"`
	// Busy is what happens to messages that arrive while the session runs:
	// queue (default), collect or interrupt.
	Busy string `yaml:"busy"`
	// Debounce, with busy: collect, waits this long after a message for
	// more before starting the turn.
	Debounce Duration `yaml:"debounce"`
	// Budget is the loop breaker's per-conversation budget.
	Budget Budget `yaml:"budget"`
	// Progress is how a channel is shown that the agent works on a
	// message (runtimes exec and http): ProgressReactions (the default),
	// ProgressMessage or ProgressNone.
	Progress Progress `yaml:"progress"`
	// ProgressText is the placeholder reply of ProgressMessage (default
	// "Working on it…").
	ProgressText string `yaml:"progress_text"`
}

// Progress is how a route shows that an agent works on a message.
type Progress string

// The progress styles.
const (
	// ProgressReactions marks the message that started a turn, where the
	// channel can (Slack's 👀 then ✅, GitHub's 👀).
	ProgressReactions Progress = "reactions"
	// ProgressMessage posts a placeholder reply when a turn starts and
	// turns it into the agent's answer (its first reply) when it has one:
	// one message that changes, for channels and teams that prefer it to
	// reactions. A turn without an answer withdraws the placeholder.
	ProgressMessage Progress = "message"
	// ProgressNone shows nothing.
	ProgressNone Progress = "none"
)

// DefaultProgressText is the placeholder reply of ProgressMessage.
const DefaultProgressText = "Working on it…"

// Match selects inbound messages. Empty fields match anything.
type Match struct {
	// Source is the channel: slack, github, jira, email, client.
	Source string `yaml:"source"`
	// Where lists globs over the place (Slack channel id, GitHub
	// owner/repo, Jira project key, mailbox address).
	Where []string `yaml:"where"`
	// Senders lists globs over the sender (an email address, a user id).
	Senders []string `yaml:"senders"`
	// Addressed requires a mention, trigger word or assignment to start a
	// conversation (default true). Messages in a conversation already bound
	// need none unless RequireAddressedWhenBound.
	Addressed *bool `yaml:"addressed"`
	// RequireAddressedWhenBound makes every message need addressing, even
	// in a bound conversation.
	RequireAddressedWhenBound bool `yaml:"require_addressed_when_bound"`
	// Direct allows direct messages (default true).
	Direct *bool `yaml:"direct"`
	// Bots allows messages written by other bots (default false).
	Bots bool `yaml:"bots"`
}

// SessionKey says which session a matched message goes to.
type SessionKey struct {
	// By is conversation (default: one session per conversation), fixed
	// (the session ID) or ref (one session per value of refs[Ref]).
	By  string `yaml:"by"`
	ID  string `yaml:"id"`
	Ref string `yaml:"ref"`
}

// ExecRuntime runs a command per turn.
type ExecRuntime struct {
	Command []string `yaml:"command"`
	Dir     string   `yaml:"dir"`
	Env     []string `yaml:"env"`
	Timeout Duration `yaml:"timeout"` // default 10m
	// User, when set, is the user (name or uid) the command runs as instead
	// of the gateway's own, so that it cannot read the gateway's files or
	// its /proc/<pid>/environ. It must exist on the host (checked here);
	// the gateway must be root or hold CAP_SETUID, CAP_SETGID and CAP_KILL, or it
	// refuses to start (see runtime.ExecConfig.User).
	User string `yaml:"user"`
}

// HTTPRuntime forwards messages to an upstream Switchboard-compatible agent
// service.
type HTTPRuntime struct {
	URL string `yaml:"url"`
	// Token is the upstream's bearer token. The upstream issues it in its
	// own format, so only its presence is checked, not its length.
	Token string `yaml:"token"`
	// Secrets verify the upstream's signed events at POST /hooks/sessions
	// (whsec_…). They are Standard Webhooks secrets, checked against that
	// format's own bounds (24 to 64 random bytes, see webhook.ParseSecret)
	// rather than MinSecretLen: the upstream often generates them (24 bytes
	// is what common senders make), and 24 random bytes are out of reach of
	// guessing.
	Secrets []string `yaml:"secrets"`
}

// Budget bounds a conversation's traffic; past it the binding pauses.
type Budget struct {
	// OutputsPerMinute bounds outputs to one conversation (default 30).
	OutputsPerMinute int `yaml:"outputs_per_minute"`
	// BotMessagesPerMinute bounds inbound messages from agents and bots in
	// one conversation (default 10).
	BotMessagesPerMinute int `yaml:"bot_messages_per_minute"`
	// Cooldown is how long a paused binding stays paused (default 15m).
	Cooldown Duration `yaml:"cooldown"`
}

// DefaultBudget is a route's budget where its configuration leaves it
// out, and the budget of a binding whose route is gone.
var DefaultBudget = Budget{OutputsPerMinute: 30, BotMessagesPerMinute: 10, Cooldown: Duration(15 * time.Minute)}

// Duration is a time.Duration written as "30s" in YAML: duration.Duration,
// aliased so that config's own fields keep the short name.
type Duration = duration.Duration

func (r *Router) defaults() {
	if r.MaxParallel == 0 {
		r.MaxParallel = 8
	}
	if r.Lease == 0 {
		r.Lease = Duration(30 * time.Second)
	}
	o := &r.Outbox
	if o.MaxAttempts == 0 {
		o.MaxAttempts = 12
	}
	if o.MaxAge == 0 {
		o.MaxAge = Duration(24 * time.Hour)
	}
	if o.Backoff == 0 {
		o.Backoff = Duration(time.Second)
	}
	if o.MaxBackoff == 0 {
		o.MaxBackoff = Duration(10 * time.Minute)
	}
	if o.Workers == 0 {
		o.Workers = 512
	}
}

func (rt *Route) defaults() {
	if rt.Runtime == "" {
		rt.Runtime = "inbox"
	}
	if rt.Busy == "" {
		rt.Busy = "queue"
	}
	if rt.Progress == "" {
		rt.Progress = ProgressReactions
	}
	if rt.ProgressText == "" {
		rt.ProgressText = DefaultProgressText
	}
	if rt.Session.By == "" {
		rt.Session.By = "conversation"
	}
	if rt.Match.Addressed == nil {
		t := true
		rt.Match.Addressed = &t
	}
	if rt.Match.Direct == nil {
		t := true
		rt.Match.Direct = &t
	}
	if rt.Exec != nil && rt.Exec.Timeout == 0 {
		rt.Exec.Timeout = Duration(DefaultExecTimeout)
	}
	b := &rt.Budget
	if b.OutputsPerMinute == 0 {
		b.OutputsPerMinute = DefaultBudget.OutputsPerMinute
	}
	if b.BotMessagesPerMinute == 0 {
		b.BotMessagesPerMinute = DefaultBudget.BotMessagesPerMinute
	}
	if b.Cooldown == 0 {
		b.Cooldown = DefaultBudget.Cooldown
	}
}

func (c *Config) validateRoutes() []error {
	var errs []error
	names := map[string]bool{}
	for i := range c.Routes {
		rt := &c.Routes[i]
		key := fmt.Sprintf("routes[%d]", i)
		if rt.Name == "" {
			errs = append(errs, fieldErr(key+".name", "is required"))
		} else if names[rt.Name] {
			errs = append(errs, fieldErr(key+".name", "%q is used by another route", rt.Name))
		}
		names[rt.Name] = true
		for j, g := range append(append([]string(nil), rt.Match.Where...), rt.Match.Senders...) {
			if _, err := path.Match(g, ""); err != nil {
				errs = append(errs, fieldErr(fmt.Sprintf("%s.match", key), "bad glob %q (#%d): %v", g, j, err))
			}
		}
		switch rt.Session.By {
		case "conversation":
		case "fixed":
			if rt.Session.ID == "" {
				errs = append(errs, fieldErr(key+".session.id", "is required with by: fixed"))
			}
		case "ref":
			if rt.Session.Ref == "" {
				errs = append(errs, fieldErr(key+".session.ref", "is required with by: ref (e.g. pr)"))
			}
		default:
			errs = append(errs, fieldErr(key+".session.by", "want conversation, fixed or ref, got %q", rt.Session.By))
		}
		switch rt.Runtime {
		case "inbox":
		case "exec":
			if rt.Exec == nil || len(rt.Exec.Command) == 0 {
				errs = append(errs, fieldErr(key+".exec.command", "is required with runtime: exec"))
			}
			if rt.Exec != nil && rt.Exec.User != "" {
				if _, err := runtime.LookupUser(rt.Exec.User); err != nil {
					errs = append(errs, fieldErr(key+".exec.user", "%v", err))
				}
			}
		case "http":
			if rt.HTTP == nil || rt.HTTP.URL == "" {
				errs = append(errs, fieldErr(key+".http.url", "is required with runtime: http"))
			} else if len(rt.HTTP.Secrets) == 0 {
				errs = append(errs, fieldErr(key+".http.secrets", "is required with runtime: http (verifies the upstream's events)"))
			}
			if rt.HTTP != nil {
				for j, sec := range rt.HTTP.Secrets {
					if _, err := webhook.ParseSecret(sec); err != nil {
						errs = append(errs, fieldErr(fmt.Sprintf("%s.http.secrets[%d]", key, j), "%v", err))
					}
				}
			}
		default:
			errs = append(errs, fieldErr(key+".runtime", "want inbox, exec or http, got %q", rt.Runtime))
		}
		switch rt.Busy {
		case "queue", "collect":
		case "interrupt":
			if rt.Runtime != "exec" {
				errs = append(errs, fieldErr(key+".busy", "interrupt works with runtime: exec only"))
			}
		default:
			errs = append(errs, fieldErr(key+".busy", "want queue, collect or interrupt, got %q", rt.Busy))
		}
		switch rt.Progress {
		case ProgressReactions, ProgressNone:
		case ProgressMessage:
			if rt.Runtime == "inbox" {
				errs = append(errs, fieldErr(key+".progress", "message needs runtime exec or http: with inbox the agent posts its own replies"))
			}
		default:
			errs = append(errs, fieldErr(key+".progress", "want reactions, message or none, got %q", rt.Progress))
		}
		if rt.Budget.OutputsPerMinute < 0 || rt.Budget.BotMessagesPerMinute < 0 {
			errs = append(errs, fieldErr(key+".budget", "must not be negative"))
		}
	}
	if d := c.Router.DefaultRoute; d != "" && !names[d] {
		errs = append(errs, fieldErr("router.default_route", "names no route: %q", d))
	}
	if c.Router.MaxParallel < 0 {
		errs = append(errs, fieldErr("router.max_parallel", "must not be negative"))
	}
	// An empty key is fine: each process then makes a random one.
	if k := c.Router.SessionKey; k != "" {
		if err := CheckSecret(k); err != nil {
			errs = append(errs, fieldErr("router.session_key", "%v", err))
		}
	}
	if c.Router.Lease.D() < time.Second {
		errs = append(errs, fieldErr("router.lease", "must be at least 1s"))
	}
	return errs
}

// DefaultExecTimeout bounds an exec turn whose route sets no timeout.
const DefaultExecTimeout = 10 * time.Minute

// SessionTokenTTL is how long the session-scoped token handed to an agent
// for one turn stays valid (see api.SessionToken): the longest exec timeout
// of any route, which no turn outlives, plus a minute for the agent's last
// call to arrive. With no exec route it is DefaultExecTimeout plus a minute.
func (c *Config) SessionTokenTTL() time.Duration {
	longest := DefaultExecTimeout
	for _, rt := range c.Routes {
		if rt.Exec != nil && rt.Exec.Timeout.D() > longest {
			longest = rt.Exec.Timeout.D()
		}
	}
	return longest + time.Minute
}

// Route returns the route named name.
func (c *Config) Route(name string) (*Route, bool) {
	for i := range c.Routes {
		if c.Routes[i].Name == name {
			return &c.Routes[i], true
		}
	}
	return nil, false
}

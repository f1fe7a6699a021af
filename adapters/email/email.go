// Package email is Switchboard's email adapter: someone writes to the bot's
// mailbox (or replies to one of its mails), the email thread becomes a
// conversation bound to a session, and the session's outputs are sent back
// as replies in that thread.
//
// Inbound, a watcher (Run) reads one IMAP mailbox with IDLE (or polling),
// turns each new message into an envelope and hands it to the router;
// loop-prone mail (auto-replies, bulk and list mail, bounces, the gateway's
// own mail) is never acted on. Outbound, Deliver sends a threaded reply by
// SMTP submission to the thread's originator.
//
// Conversation anchors (envelope.Conversation.Ref) are the thread root's
// Message-ID without angle brackets; envelope ids are "email:<Message-ID>".
// What a reply needs beyond the anchor (the originator, the subject, the
// References chain) and where the watcher stopped (mailbox, UIDVALIDITY,
// last UID) are kept in the gateway's store (adapters.Deps State, namespace
// "email"), which replicas share; see state.go and README.md.
// The adapter registers itself as the "email" plugin.
package email

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/mail"
	"strings"
	"time"

	"github.com/switchboardhq/switchboard/adapters"
	"github.com/switchboardhq/switchboard/adapters/internal/health"
	"github.com/switchboardhq/switchboard/config/duration"
)

// Name is the plugin name, the envelope source and the conversation source.
const Name = "email"

func init() {
	adapters.Register(adapters.Typed(Name, func() *Config { c := &Config{}; c.defaults(); return c }, New))
}

// Compile-time checks of the capabilities the gateway looks for.
var (
	_ adapters.Adapter = (*Adapter)(nil)
	_ adapters.Runner  = (*Adapter)(nil)
	_ adapters.Checker = (*Adapter)(nil)
)

// Security says how a connection is protected.
type Security string

// The connection security modes. Plain sends credentials in the clear and is
// meant for tests against a local server only.
const (
	TLS      Security = "tls"
	StartTLS Security = "starttls"
	Plain    Security = "plain"
)

// Config is the "adapters: email:" section of the gateway's configuration:
// one mailbox, read over IMAP and answered over SMTP.
type Config struct {
	// Address is the mailbox's own address, used as the From of replies and
	// to recognise the gateway's own mail. Required.
	Address string `yaml:"address"`
	// DisplayName is the From display name of replies (default
	// "Switchboard").
	DisplayName string `yaml:"display_name"`
	// Senders is the allow-list: addresses ("ada@example.com") and domains
	// ("example.com" or "@example.com"), case-insensitive. Mail from anyone
	// else is left unread and logged. Empty allows every sender.
	Senders []string `yaml:"senders"`
	// MaxMessage is the largest message read, in bytes (default 10 MiB);
	// larger mail is left unread and logged.
	MaxMessage int64 `yaml:"max_message"`
	// MaxPart is the most read from one text part, in bytes (default 1 MiB);
	// the rest is cut.
	MaxPart int64 `yaml:"max_part"`

	IMAP IMAPConfig `yaml:"imap"`
	SMTP SMTPConfig `yaml:"smtp"`
}

// IMAPConfig is where mail is read.
type IMAPConfig struct {
	// Addr is host:port (993 for tls, 143 for starttls). Required.
	Addr string `yaml:"addr"`
	// Security is tls (default), starttls or plain (tests only).
	Security Security `yaml:"security"`
	// Username and Password log in (an app password for Gmail, Outlook,
	// iCloud and Fastmail).
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	// Mailbox is the folder watched (default INBOX).
	Mailbox string `yaml:"mailbox"`
	// MoveTo, when set, is a folder handled mail is moved to; otherwise
	// handled mail is marked \Seen.
	MoveTo string `yaml:"move_to"`
	// PollInterval is how often the mailbox is checked when the server
	// lacks IDLE, and how often IDLE is renewed (default 1m). The watcher
	// is reported stuck when its loop has not run for twice as long.
	PollInterval duration.Duration `yaml:"poll_interval"`
	// Backoff and MaxBackoff bound the wait before reconnecting after a
	// failure (defaults 1s and 5m); the wait doubles after each failure.
	Backoff    duration.Duration `yaml:"backoff"`
	MaxBackoff duration.Duration `yaml:"max_backoff"`
	// Timeout bounds dialing and, while waiting for mail, starting and
	// ending IDLE and each NOOP (default 1m): past it the watcher drops the
	// connection and reconnects. Other commands are not bounded yet.
	Timeout duration.Duration `yaml:"timeout"`
}

// SMTPConfig is where replies are submitted.
type SMTPConfig struct {
	// Addr is host:port (587 for starttls, 465 for tls). Required.
	Addr string `yaml:"addr"`
	// Security is starttls (default), tls or plain (tests only).
	Security Security `yaml:"security"`
	// Username and Password authenticate with PLAIN; empty Username skips
	// authentication.
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	// Domain is the right-hand side of the Message-IDs the gateway makes
	// (default: the domain of Address).
	Domain string `yaml:"domain"`
	// Timeout bounds one submission (default 1m).
	Timeout duration.Duration `yaml:"timeout"`
}

// Defaults of Config.
const (
	DefaultDisplayName  = "Switchboard"
	DefaultMailbox      = "INBOX"
	DefaultMaxMessage   = 10 << 20
	DefaultMaxPart      = 1 << 20
	DefaultPollInterval = time.Minute
	DefaultBackoff      = time.Second
	DefaultMaxBackoff   = 5 * time.Minute
	DefaultTimeout      = time.Minute
)

func (c *Config) defaults() {
	if c.DisplayName == "" {
		c.DisplayName = DefaultDisplayName
	}
	if c.MaxMessage == 0 {
		c.MaxMessage = DefaultMaxMessage
	}
	if c.MaxPart == 0 {
		c.MaxPart = DefaultMaxPart
	}
	if c.IMAP.Security == "" {
		c.IMAP.Security = TLS
	}
	if c.IMAP.Mailbox == "" {
		c.IMAP.Mailbox = DefaultMailbox
	}
	if c.IMAP.PollInterval == 0 {
		c.IMAP.PollInterval = duration.Duration(DefaultPollInterval)
	}
	if c.IMAP.Backoff == 0 {
		c.IMAP.Backoff = duration.Duration(DefaultBackoff)
	}
	if c.IMAP.MaxBackoff == 0 {
		c.IMAP.MaxBackoff = duration.Duration(DefaultMaxBackoff)
	}
	if c.IMAP.Timeout == 0 {
		c.IMAP.Timeout = duration.Duration(DefaultTimeout)
	}
	if c.SMTP.Security == "" {
		c.SMTP.Security = StartTLS
	}
	if c.SMTP.Domain == "" {
		if _, d, ok := strings.Cut(c.Address, "@"); ok {
			c.SMTP.Domain = strings.ToLower(d)
		}
	}
	if c.SMTP.Timeout == 0 {
		c.SMTP.Timeout = duration.Duration(DefaultTimeout)
	}
}

// Validate checks c and returns every problem, each naming its key relative
// to the section ("imap.addr: is required").
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if c.Address == "" {
		bad("address", "is required (the mailbox's own address, the From of replies)")
	} else if a, err := mail.ParseAddress(c.Address); err != nil || a.Name != "" {
		bad("address", "must be a bare address like bot@example.com, got %q", c.Address)
	}
	for i, s := range c.Senders {
		if strings.TrimSpace(s) == "" || strings.ContainsAny(s, " \t<>,") {
			bad(fmt.Sprintf("senders[%d]", i), "must be an address or a domain, got %q", s)
		}
	}
	if c.MaxMessage < 0 {
		bad("max_message", "must not be negative")
	}
	if c.MaxPart < 0 {
		bad("max_part", "must not be negative")
	}
	checkAddr := func(key, addr string) {
		if addr == "" {
			bad(key, "is required (host:port)")
		} else if _, _, err := net.SplitHostPort(addr); err != nil {
			bad(key, "must be host:port, got %q", addr)
		}
	}
	checkSecurity := func(key string, s Security) {
		switch s {
		case "", TLS, StartTLS, Plain:
		default:
			bad(key, "must be tls, starttls or plain, got %q", s)
		}
	}
	checkAddr("imap.addr", c.IMAP.Addr)
	checkSecurity("imap.security", c.IMAP.Security)
	if c.IMAP.Username == "" {
		bad("imap.username", "is required")
	}
	if c.IMAP.MoveTo != "" && strings.EqualFold(c.IMAP.MoveTo, c.IMAP.Mailbox) {
		bad("imap.move_to", "must differ from imap.mailbox")
	}
	for key, d := range map[string]duration.Duration{"imap.poll_interval": c.IMAP.PollInterval,
		"imap.backoff": c.IMAP.Backoff, "imap.max_backoff": c.IMAP.MaxBackoff, "imap.timeout": c.IMAP.Timeout,
		"smtp.timeout": c.SMTP.Timeout} {
		if d < 0 {
			bad(key, "must not be negative")
		}
	}
	checkAddr("smtp.addr", c.SMTP.Addr)
	checkSecurity("smtp.security", c.SMTP.Security)
	if c.SMTP.Username != "" && c.SMTP.Password == "" {
		bad("smtp.password", "is required when smtp.username is set")
	}
	if c.SMTP.Domain == "" && c.Address != "" && !strings.Contains(c.Address, "@") {
		bad("smtp.domain", "is required when address has no domain")
	}
	return errors.Join(errs...)
}

// allowed reports whether addr passes the Senders allow-list.
func (c *Config) allowed(addr string) bool {
	if len(c.Senders) == 0 {
		return true
	}
	addr = strings.ToLower(addr)
	_, domain, _ := strings.Cut(addr, "@")
	for _, s := range c.Senders {
		s = strings.ToLower(strings.TrimSpace(s))
		switch {
		case strings.Contains(strings.TrimPrefix(s, "@"), "@"):
			if s == addr {
				return true
			}
		case strings.TrimPrefix(s, "@") == domain:
			return true
		}
	}
	return false
}

// Adapter is the email channel for one mailbox. It is a Sink (SMTP replies),
// a Runner (the IMAP watcher) and a Checker (health.go). Its methods are
// safe for concurrent use.
type Adapter struct {
	cfg     Config
	ingress adapters.Ingress
	log     *slog.Logger
	now     func() time.Time
	threads *threads
	cursor  *cursors

	metrics *metrics
	health  *health.Tracker // whether the last IMAP login and SMTP send worked
	watch   watch           // what the watcher last did
	// failing is owned by Run (see refused).
	failing failing

	// afterUID, when set (by tests), is called once a message's handling
	// is complete and the cursor saved.
	afterUID func(uid uint32)
}

// New builds the adapter from a configuration. It does no I/O: the IMAP and
// SMTP servers are reached by Run and Deliver. deps.State is required: it
// keeps the IMAP cursor and the threads' reply state.
func New(cfg *Config, deps adapters.Deps) (*Adapter, error) {
	c := *cfg
	c.defaults()
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("email: config: %w", err)
	}
	if deps.Ingress == nil {
		return nil, errors.New("email: no ingress")
	}
	if deps.State == nil {
		return nil, errors.New("email: no state store (adapters.Deps.State)")
	}
	deps = deps.WithDefaults(Name)
	a := &Adapter{
		cfg:     c,
		ingress: deps.Ingress,
		log:     deps.Logger.With("mailbox", c.Address),
		now:     deps.Now,
		threads: &threads{kv: deps.State},
		cursor:  &cursors{kv: deps.State, address: strings.ToLower(c.Address)},
	}
	m, err := newMetrics(deps.Registry, a.idleAlive)
	if err != nil {
		return nil, fmt.Errorf("email: metrics: %w", err)
	}
	a.metrics = m
	a.health = health.New(Name, []string{credIMAP, credSMTP}, m.healthy, a.log)
	return a, nil
}

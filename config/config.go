// Package config loads Switchboard's YAML configuration file.
//
// Values may name environment variables as ${NAME} (or ${NAME:-default});
// they are expanded in scalar values only, after parsing, so a secret with
// YAML-special characters cannot change the file's structure. Unknown keys
// are errors, and every error names the key it is about
// ("tokens[0].scopes[1]: unknown scope \"root\"").
package config

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/switchboardhq/switchboard/store"
)

// Config is the whole configuration file. The zero value, after Defaults, is
// the embedded default: SQLite under ./data, listening on 127.0.0.1:8080.
type Config struct {
	// Listen is the HTTP address, host:port.
	Listen string `yaml:"listen"`
	// Data is the directory for the embedded store and other local state.
	Data string `yaml:"data"`
	// Store selects the backend: empty or "sqlite" for the embedded SQLite
	// file under Data, or a postgres:// URL.
	Store string `yaml:"store"`
	// PublicURL is how agents and channels reach the gateway; it defaults to
	// http://<listen>.
	PublicURL string  `yaml:"public_url"`
	Limits    Limits  `yaml:"limits"`
	Tokens    []Token `yaml:"tokens"`
	// Log sets the log level and format.
	Log Log `yaml:"log"`
	// Router tunes routing and delivery; Routes are the route rules, tried
	// in order.
	Router Router  `yaml:"router"`
	Routes []Route `yaml:"routes"`
	// Adapters holds each channel's own section (slack, github, …), decoded
	// and validated by that adapter.
	Adapters map[string]yaml.Node `yaml:"adapters"`
	// Webhooks configures outbound webhook delivery (package router/webhooks).
	Webhooks Webhooks `yaml:"webhooks"`
	// CatchUp configures the channels' catch-up after downtime.
	CatchUp CatchUp `yaml:"catch_up"`
	// Console configures the operator console.
	Console Console `yaml:"console"`
}

// Limits bound requests.
type Limits struct {
	// MaxBody is the largest request body in bytes (default 1 MiB).
	MaxBody int64 `yaml:"max_body"`
	// MaxText is the longest message text in bytes (default 32 KiB).
	MaxText int `yaml:"max_text"`
	// RatePerSecond and Burst set each token's request rate (default 1000/s,
	// burst 2000); a negative rate turns the limit off.
	RatePerSecond float64 `yaml:"rate_per_second"`
	Burst         int     `yaml:"burst"`
	// FailedAuthPerMinute is how many requests with a missing or unknown
	// token one client address may make per minute, in bursts of as many,
	// before its requests are answered 429 (default 60); negative turns
	// the limit off.
	FailedAuthPerMinute int `yaml:"failed_auth_per_minute"`
	// StreamsPerToken caps the event streams and long polls one token may
	// hold open at once (default 64); one more is answered 429.
	StreamsPerToken int `yaml:"streams_per_token"`
	// HeaderTimeout bounds reading a request's headers (default 10s), and
	// ReadTimeout reading the whole request, headers and body (default
	// 30s): a client slower than that is answered 408 or disconnected.
	// WriteTimeout bounds writing an ordinary response (default 60s).
	// Event streams and long polls are exempt (streams_per_token bounds
	// them); IdleTimeout closes a kept-alive connection left idle
	// (default 2m).
	HeaderTimeout Duration `yaml:"header_timeout"`
	ReadTimeout   Duration `yaml:"read_timeout"`
	WriteTimeout  Duration `yaml:"write_timeout"`
	IdleTimeout   Duration `yaml:"idle_timeout"`
	// MaxConns caps the connections open at once (default 512): past it,
	// new connections wait to be accepted. MaxConnsPerClient caps those
	// from one client address, an IPv6 address counting by its /64
	// (default 128): past it, a new connection is closed at once. Behind a
	// reverse proxy every client has the proxy's address: raise it, or set
	// -1 to turn it off.
	MaxConns          int `yaml:"max_conns"`
	MaxConnsPerClient int `yaml:"max_conns_per_client"`
}

// Defaults of the Limits fields that the gateway, rather than the API,
// applies.
const (
	DefaultFailedAuthPerMinute = 60
	DefaultStreamsPerToken     = 64
	DefaultHeaderTimeout       = 10 * time.Second
	DefaultReadTimeout         = 30 * time.Second
	DefaultWriteTimeout        = 60 * time.Second
	DefaultIdleTimeout         = 2 * time.Minute
	DefaultMaxConns            = 512
	DefaultMaxConnsPerClient   = 128
)

func (l *Limits) defaults() {
	if l.MaxBody == 0 {
		l.MaxBody = 1 << 20
	}
	if l.MaxText == 0 {
		l.MaxText = 32 << 10
	}
	if l.FailedAuthPerMinute == 0 {
		l.FailedAuthPerMinute = DefaultFailedAuthPerMinute
	}
	if l.StreamsPerToken == 0 {
		l.StreamsPerToken = DefaultStreamsPerToken
	}
	for _, d := range []struct {
		field *Duration
		def   time.Duration
	}{
		{&l.HeaderTimeout, DefaultHeaderTimeout},
		{&l.ReadTimeout, DefaultReadTimeout},
		{&l.WriteTimeout, DefaultWriteTimeout},
		{&l.IdleTimeout, DefaultIdleTimeout},
	} {
		if *d.field == 0 {
			*d.field = Duration(d.def)
		}
	}
	if l.MaxConns == 0 {
		l.MaxConns = DefaultMaxConns
	}
	if l.MaxConnsPerClient == 0 {
		l.MaxConnsPerClient = DefaultMaxConnsPerClient
	}
}

// validate checks l (after defaults).
func (l *Limits) validate() []error {
	var errs []error
	if l.MaxBody < 0 {
		errs = append(errs, fieldErr("limits.max_body", "must not be negative"))
	}
	if l.MaxText < 0 {
		errs = append(errs, fieldErr("limits.max_text", "must not be negative"))
	}
	if l.Burst < 0 {
		errs = append(errs, fieldErr("limits.burst", "must not be negative"))
	}
	if l.StreamsPerToken < 0 {
		errs = append(errs, fieldErr("limits.streams_per_token", "must be at least 1"))
	}
	if l.MaxConns < 0 {
		errs = append(errs, fieldErr("limits.max_conns", "must be at least 1"))
	}
	for _, d := range []struct {
		key string
		v   Duration
	}{
		{"limits.header_timeout", l.HeaderTimeout}, {"limits.read_timeout", l.ReadTimeout},
		{"limits.write_timeout", l.WriteTimeout}, {"limits.idle_timeout", l.IdleTimeout},
	} {
		if d.v < 0 {
			errs = append(errs, fieldErr(d.key, "must not be negative"))
		}
	}
	if l.ReadTimeout < l.HeaderTimeout {
		errs = append(errs, fieldErr("limits.read_timeout", "must be at least limits.header_timeout (%s): it covers the headers too", l.HeaderTimeout.D()))
	}
	return errs
}

// Token is an API token declared in the file. Secret is usually ${VAR}, at
// least MinSecretLen bytes.
type Token struct {
	Name     string        `yaml:"name"`
	Secret   string        `yaml:"secret"`
	Scopes   []store.Scope `yaml:"scopes"`
	Sessions []string      `yaml:"sessions"`
}

// Log configures logging.
type Log struct {
	Level  string `yaml:"level"`  // debug, info (default), warn, error
	Format string `yaml:"format"` // text (default) or json
}

// Defaults fills unset fields with their defaults.
func (c *Config) Defaults() {
	if c.Listen == "" {
		c.Listen = "127.0.0.1:8080"
	}
	if c.Data == "" {
		c.Data = "data"
	}
	if c.Store == "" {
		c.Store = "sqlite"
	}
	if c.PublicURL == "" {
		c.PublicURL = "http://" + c.Listen
	}
	c.Limits.defaults()
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if c.Log.Format == "" {
		c.Log.Format = "text"
	}
	c.Router.defaults()
	c.Webhooks.defaults()
	c.CatchUp.defaults()
	c.Console.defaults()
	for i := range c.Routes {
		c.Routes[i].defaults()
	}
}

// FieldError is a problem with one key of the file.
type FieldError struct {
	Key     string // "tokens[0].secret"
	Message string
}

func (e *FieldError) Error() string { return e.Key + ": " + e.Message }

func fieldErr(key, format string, args ...any) error {
	return &FieldError{Key: key, Message: fmt.Sprintf(format, args...)}
}

// Validate checks c (after Defaults) and returns every problem found, joined.
func (c *Config) Validate() error {
	var errs []error
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		errs = append(errs, fieldErr("listen", "%q is not host:port", c.Listen))
	}
	if c.Store != "sqlite" && !strings.HasPrefix(c.Store, "postgres://") && !strings.HasPrefix(c.Store, "postgresql://") {
		errs = append(errs, fieldErr("store", "want \"sqlite\" or a postgres:// URL, got %q", c.Store))
	}
	errs = append(errs, c.Limits.validate()...)
	names := map[string]bool{}
	for i, t := range c.Tokens {
		key := fmt.Sprintf("tokens[%d]", i)
		switch {
		case t.Name == "":
			errs = append(errs, fieldErr(key+".name", "is required"))
		case names[t.Name]:
			errs = append(errs, fieldErr(key+".name", "%q is used by another token", t.Name))
		}
		names[t.Name] = true
		if err := CheckSecret(t.Secret); err != nil {
			errs = append(errs, fieldErr(key+".secret", "%v", err))
		}
		if len(t.Scopes) == 0 {
			errs = append(errs, fieldErr(key+".scopes", "is required (admin, steer or agent)"))
		}
		for j, s := range t.Scopes {
			if !s.Valid() {
				errs = append(errs, fieldErr(fmt.Sprintf("%s.scopes[%d]", key, j), "unknown scope %q (want admin, steer or agent)", s))
			}
			if s == store.ScopeAgent && len(t.Sessions) == 0 {
				errs = append(errs, fieldErr(key+".sessions", "an agent token must name its sessions"))
			}
		}
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fieldErr("log.level", "want debug, info, warn or error, got %q", c.Log.Level))
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		errs = append(errs, fieldErr("log.format", "want text or json, got %q", c.Log.Format))
	}
	errs = append(errs, c.validateRoutes()...)
	errs = append(errs, c.Webhooks.validate()...)
	errs = append(errs, c.CatchUp.validate()...)
	errs = append(errs, c.Console.validate()...)
	return errors.Join(errs...)
}

// Load reads, expands, decodes, defaults and validates the file at path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	c, err := Parse(data, os.LookupEnv)
	if err != nil {
		return nil, fmt.Errorf("config: %s: %w", path, err)
	}
	return c, nil
}

// Parse decodes a configuration from YAML, expanding ${VAR} with lookup.
func Parse(data []byte, lookup func(string) (string, bool)) (*Config, error) {
	var c Config
	if len(bytes.TrimSpace(data)) > 0 {
		if err := Decode(data, lookup, &c); err != nil {
			return nil, err
		}
	}
	c.Defaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// Decode expands ${VAR} references in the scalar values of the YAML document
// data and decodes it strictly (unknown keys are errors) into v. Adapters use
// it for their own typed sections.
func Decode(data []byte, lookup func(string) (string, bool), v any) error {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return fmt.Errorf("yaml: %w", err)
	}
	if err := expandNode(&doc, "", lookup); err != nil {
		return err
	}
	return DecodeNode(&doc, v)
}

// DecodeNode decodes an already expanded YAML node into v strictly:
// unknown keys are errors. The gateway uses it for the adapters' sections,
// which Parse has expanded already (expanding twice would break a value
// that itself contains "${"). An error names the key it is about, relative
// to node, and the line of node's document it stands on (decode.go).
func DecodeNode(node *yaml.Node, v any) error {
	data, err := yaml.Marshal(node)
	if err != nil {
		return fmt.Errorf("yaml: %w", err)
	}
	if err := decodeStrict(data, v); err != nil {
		return explainDecode(node, data, v, err)
	}
	return nil
}

// decodeStrict decodes the YAML document data into v, unknown keys being
// errors.
func decodeStrict(data []byte, v any) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	return dec.Decode(v)
}

func expandNode(n *yaml.Node, key string, lookup func(string) (string, bool)) error {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			if err := expandNode(c, key, lookup); err != nil {
				return err
			}
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i].Value
			if key != "" {
				k = key + "." + k
			}
			if err := expandNode(n.Content[i+1], k, lookup); err != nil {
				return err
			}
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			if err := expandNode(c, key+"["+strconv.Itoa(i)+"]", lookup); err != nil {
				return err
			}
		}
	case yaml.ScalarNode:
		if !strings.Contains(n.Value, "${") {
			return nil
		}
		v, err := Expand(n.Value, lookup)
		if err != nil {
			return fieldErr(key, "%v", err)
		}
		n.Value = v
		// An expanded value is a string unless it is plainly something else.
		if n.Tag == "!!str" || n.Style != 0 {
			n.Tag = "!!str"
		} else {
			n.Tag = ""
		}
	}
	return nil
}

// Expand replaces ${NAME} and ${NAME:-default} in s. "$$" is a literal "$".
// An unset variable without a default is an error naming it.
func Expand(s string, lookup func(string) (string, bool)) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 >= len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
			continue
		case '{':
		default:
			b.WriteByte('$')
			continue
		}
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			return "", fmt.Errorf("unclosed ${ in %q", s)
		}
		expr := s[i+2 : i+end]
		name, def, hasDef := strings.Cut(expr, ":-")
		if !validEnvName(name) {
			return "", fmt.Errorf("%q is not a valid environment variable name", name)
		}
		v, ok := lookup(name)
		switch {
		case ok && v != "":
			b.WriteString(v)
		case hasDef:
			b.WriteString(def)
		case ok:
		default:
			return "", fmt.Errorf("environment variable %s is not set", name)
		}
		i += end
	}
	return b.String(), nil
}

func validEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		if !(c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

package github

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/switchboardhq/switchboard/adapters"
	"github.com/switchboardhq/switchboard/config"
	"github.com/switchboardhq/switchboard/config/duration"
)

func TestRegistered(t *testing.T) {
	p, ok := adapters.Lookup(Name)
	if !ok {
		t.Fatal("the github plugin is not registered")
	}
	cfg := p.NewConfig()
	if err := cfg.Validate(); err == nil {
		t.Fatal("the zero configuration validates; it has no secret and no credentials")
	}
	c := cfg.(*Config)
	c.WebhookSecret, c.Token = "s3cret", "ghp_x"
	a, err := p.New(c, adapters.Deps{Ingress: newRecorder()})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := a.(adapters.HTTPHandler); !ok {
		t.Error("not an HTTPHandler")
	}
	if _, err := p.New(&struct{ Config }{}, adapters.Deps{}); err == nil {
		t.Error("a foreign config type was accepted")
	}
}

// TestConfigDecodes decodes sections as the gateway does (unknown keys are
// errors, ${VAR} expanded), with the defaults of NewConfig.
func TestConfigDecodes(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "app.pem")
	if err := os.WriteFile(keyFile, []byte(appKeyPEM(t)), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"GITHUB_WEBHOOK_SECRET": "whsec", "GITHUB_TOKEN": "ghp_abc", "KEY_FILE": keyFile}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	decode := func(section string) (*Config, error) {
		p, _ := adapters.Lookup(Name)
		c := p.NewConfig().(*Config)
		if err := config.Decode([]byte(section), lookup, c); err != nil {
			return nil, err
		}
		return c, c.Validate()
	}

	c, err := decode(`
webhook_secret: ${GITHUB_WEBHOOK_SECRET}
token: ${GITHUB_TOKEN}
login: switchboard-bot
triggers:
  mentions: [agent]
  command: /agent
  label: agent
  assignment: false
opened_steers: true
max_body: 10485760
lookup_timeout: 2s
reactions: {working: rocket}
`)
	if err != nil {
		t.Fatal(err)
	}
	if c.WebhookSecret != "whsec" || c.Token != "ghp_abc" || c.Triggers.Command != "/agent" || *c.Triggers.Assignment ||
		!c.OpenedSteers || c.MaxBody != 10<<20 || c.LookupTimeout.D().Seconds() != 2 || c.Reactions.Working != "rocket" ||
		c.MaxChars != DefaultMaxChars || c.APIURL != DefaultAPIURL || !*c.Reactions.Enabled {
		t.Errorf("decoded %+v", c)
	}

	c, err = decode(`
webhook_secret: ${GITHUB_WEBHOOK_SECRET}
app:
  id: 4242
  private_key_file: ${KEY_FILE}
`)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(c, adapters.Deps{Ingress: newRecorder()}); err != nil {
		t.Fatalf("New with a key file: %v", err)
	}

	if _, err := decode("webhook_secret: x\ntoken: y\ntriggers: {comand: /agent}\n"); err == nil || !strings.Contains(err.Error(), "comand") {
		t.Errorf("a misspelt key: err = %v", err)
	}
}

func TestConfigValidation(t *testing.T) {
	valid := func() Config {
		c := Config{WebhookSecret: "s", Token: "ghp_x"}
		c.defaults()
		return c
	}
	for _, tc := range []struct {
		name   string
		mutate func(*Config)
		key    string
	}{
		{"no secret", func(c *Config) { c.WebhookSecret = "" }, "webhook_secret:"},
		{"no credentials", func(c *Config) { c.Token = "" }, "token:"},
		{"both credentials", func(c *Config) { c.App = AppConfig{ID: 1, PrivateKey: "k"} }, "app:"},
		{"app without id", func(c *Config) { c.Token = ""; c.App = AppConfig{PrivateKey: "k"} }, "app.id:"},
		{"app without key", func(c *Config) { c.Token = ""; c.App = AppConfig{ID: 1} }, "app.private_key:"},
		{"app with two keys", func(c *Config) { c.Token = ""; c.App = AppConfig{ID: 1, PrivateKey: "k", PrivateKeyFile: "f"} }, "app.private_key_file:"},
		{"app slug with [bot]", func(c *Config) { c.Token = ""; c.App = AppConfig{ID: 1, PrivateKey: "k", Slug: "x[bot]"} }, "app.slug:"},
		{"login with app", func(c *Config) { c.Token = ""; c.Login = "me"; c.App = AppConfig{ID: 1, PrivateKey: "k"} }, "login:"},
		{"login with @", func(c *Config) { c.Login = "@me" }, "login:"},
		{"bad api url", func(c *Config) { c.APIURL = "api.github.com" }, "api_url:"},
		{"bad mention", func(c *Config) { c.Triggers.Mentions = []string{"@agent"} }, "triggers.mentions[0]:"},
		{"command without slash", func(c *Config) { c.Triggers.Command = "agent" }, "triggers.command:"},
		{"command with space", func(c *Config) { c.Triggers.Command = "/run agent" }, "triggers.command:"},
		{"label with spaces", func(c *Config) { c.Triggers.Label = " agent" }, "triggers.label:"},
		{"body over 25 MiB", func(c *Config) { c.MaxBody = 26 << 20 }, "max_body:"},
		{"negative body", func(c *Config) { c.MaxBody = -1 }, "max_body:"},
		{"chars over the limit", func(c *Config) { c.MaxChars = 70000 }, "max_chars:"},
		{"chars too few", func(c *Config) { c.MaxChars = 10 }, "max_chars:"},
		{"timeout beyond GitHub's", func(c *Config) { c.LookupTimeout = duration.Duration(10e9) }, "lookup_timeout:"},
		{"unknown reaction", func(c *Config) { c.Reactions.Working = "thumbsup" }, "reactions.working:"},
	} {
		c := valid()
		tc.mutate(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.key) {
			t.Errorf("%s: err = %v, want one naming %s", tc.name, err, tc.key)
		}
	}
	c := valid()
	if err := c.Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	// A key that does not parse is refused by New, naming the key.
	c = valid()
	c.Token, c.App = "", AppConfig{ID: 1, PrivateKey: "not a key"}
	if _, err := New(&c, adapters.Deps{Ingress: newRecorder()}); err == nil || !strings.Contains(err.Error(), "app.private_key") {
		t.Errorf("New with a bad key: %v", err)
	}
}

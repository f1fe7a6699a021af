package config

import (
	"errors"
	"fmt"
	"strings"
)

// MinSecretLen is the shortest secret, in bytes, accepted where the
// operator chooses the secret and the gateway checks it: API tokens (in the
// file and SWITCHBOARD_TOKEN) and router.session_key. Anything an agent holds
// (a session token is an HMAC under session_key) can be checked offline
// against a guessed key as fast as a machine hashes, so a short one is found:
// 32 bytes of hex are 128 random bits.
const MinSecretLen = 32

// secretFix is how to make a secret, for error messages.
const secretFix = "generate one with: openssl rand -hex 32"

// publishedSecrets are values that have been printed in this repository's
// examples and README, or in the Standard Webhooks specification: anyone can
// read them, so a gateway must not run with them.
var publishedSecrets = map[string]bool{
	"change-me-to-a-long-secret":             true, // examples/switchboard.yaml, tokens
	"upstream-token":                         true, // examples/switchboard.yaml, routes[].http.token
	"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw": true, // the Standard Webhooks spec's example
	"bench-token-0123456789":                 true, // the README's load-testing commands
}

// published reports whether s is a published example value or an obvious
// placeholder.
func published(s string) bool {
	s = strings.TrimSpace(s)
	l := strings.ToLower(s)
	return publishedSecrets[s] || strings.Contains(l, "change-me") || strings.Contains(l, "changeme")
}

// CheckSecret checks a secret the operator chose: at least MinSecretLen bytes
// and not a published example. The error says how to make a good one and
// never holds the secret itself.
func CheckSecret(secret string) error {
	if n := len(strings.TrimSpace(secret)); n < MinSecretLen {
		return fmt.Errorf("is %d bytes, shorter than %d; %s", n, MinSecretLen, secretFix)
	}
	if published(secret) {
		return fmt.Errorf("is a published example value, known to anyone; %s", secretFix)
	}
	return nil
}

// CheckPublished refuses every secret in c that is a published example value
// (see CheckSecret), including those whose length Validate leaves to their
// own format: webhook signing secrets and upstream tokens. serve and config
// check run it; Parse does not, so that tests may use the published test
// vectors (the Standard Webhooks spec's secret) to check signatures against
// the specification.
func (c *Config) CheckPublished() error {
	var errs []error
	check := func(key, v string) {
		if v != "" && published(v) {
			errs = append(errs, fieldErr(key, "is a published example value, known to anyone; %s", secretFix))
		}
	}
	for i, t := range c.Tokens {
		check(fmt.Sprintf("tokens[%d].secret", i), t.Secret)
	}
	check("router.session_key", c.Router.SessionKey)
	for i, rt := range c.Routes {
		if rt.HTTP == nil {
			continue
		}
		check(fmt.Sprintf("routes[%d].http.token", i), rt.HTTP.Token)
		for j, s := range rt.HTTP.Secrets {
			check(fmt.Sprintf("routes[%d].http.secrets[%d]", i, j), s)
		}
	}
	for i, d := range c.Webhooks.Destinations {
		check(fmt.Sprintf("webhooks.destinations[%d].secret", i), d.Secret)
	}
	return errors.Join(errs...)
}

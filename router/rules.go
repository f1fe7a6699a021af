package router

import (
	"path"
	"strings"

	"github.com/switchboardhq/switchboard/adapters"
	"github.com/switchboardhq/switchboard/config"
)

// match reports whether route rt takes in, a message whose conversation is
// bound already (bound) or not. why says what failed, for logs.
func match(rt *config.Route, in *adapters.Inbound, bound bool) (ok bool, why string) {
	m := &rt.Match
	f := &in.Facts
	switch {
	case m.Source != "" && m.Source != in.Envelope.Source:
		return false, "source"
	case len(m.Where) > 0 && !anyGlob(m.Where, f.Where):
		return false, "where"
	case len(m.Senders) > 0 && !anyGlob(m.Senders, f.Sender):
		return false, "sender"
	case f.Direct && m.Direct != nil && !*m.Direct:
		return false, "direct messages off"
	case f.FromBot && !m.Bots:
		return false, "from a bot"
	}
	needAddress := m.Addressed == nil || *m.Addressed
	if bound && !m.RequireAddressedWhenBound {
		needAddress = false
	}
	if needAddress && !f.Addressed && !f.Direct {
		return false, "not addressed"
	}
	return true, ""
}

// anyGlob reports whether s matches one of globs (path.Match syntax,
// case-insensitive; a lone "*" matches everything, slashes included).
func anyGlob(globs []string, s string) bool {
	s = strings.ToLower(s)
	for _, g := range globs {
		if g == "*" {
			return true
		}
		if ok, _ := path.Match(strings.ToLower(g), s); ok {
			return true
		}
	}
	return false
}

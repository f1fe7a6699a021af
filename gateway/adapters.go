package gateway

import (
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"

	"github.com/switchboardhq/switchboard/adapters"
	"github.com/switchboardhq/switchboard/config"
	"github.com/switchboardhq/switchboard/internal/httpx"
)

// builtAdapter is an adapter with the name it was configured under.
type builtAdapter struct {
	name string
	a    adapters.Adapter
}

// buildAdapters constructs the adapter of every section under adapters: in
// the config. Constructors do no I/O.
func buildAdapters(cfg *config.Config, deps adapters.Deps, requestCatchUp func(name string)) ([]builtAdapter, error) {
	var out []builtAdapter
	for _, name := range slices.Sorted(maps.Keys(cfg.Adapters)) {
		p, ok := adapters.Lookup(name)
		if !ok {
			return nil, fmt.Errorf("gateway: adapters.%s: no such adapter (have: %s)", name, strings.Join(adapters.Names(), ", "))
		}
		ac := p.NewConfig()
		node := cfg.Adapters[name]
		if err := config.DecodeNode(&node, ac); err != nil {
			return nil, fmt.Errorf("gateway: adapters.%s: %w", name, err)
		}
		if err := ac.Validate(); err != nil {
			return nil, fmt.Errorf("gateway: adapters.%s: %w", name, err)
		}
		d := deps
		d.Logger = deps.Logger.With("adapter", name)
		if requestCatchUp != nil {
			d.RequestCatchUp = func() { requestCatchUp(name) }
		}
		a, err := p.New(ac, d)
		if err != nil {
			return nil, fmt.Errorf("gateway: adapters.%s: %w", name, err)
		}
		out = append(out, builtAdapter{name, a})
	}
	return out, nil
}

// upstreamSecrets collects the secrets that verify upstream events, from
// every http route.
func upstreamSecrets(cfg *config.Config) []string {
	var out []string
	for _, rt := range cfg.Routes {
		if rt.HTTP != nil {
			out = append(out, rt.HTTP.Secrets...)
		}
	}
	return out
}

// hooks is the handler for /hooks/: each adapter's webhooks under
// /hooks/<name>/, and the http runtime's upstream events at /hooks/sessions.
// Every answer it makes itself is a JSON error, as the handlers' are: 404
// for a path no webhook is mounted at.
func hooks(built []builtAdapter, sessionsHook http.Handler) http.Handler {
	mux := http.NewServeMux()
	var mounted []string
	for _, b := range built {
		if h, ok := b.a.(adapters.HTTPHandler); ok {
			// Both /hooks/<name> and everything under /hooks/<name>/:
			// webhook senders do not follow a redirect for a POST.
			prefix := "/hooks/" + b.name
			hh := http.StripPrefix(prefix, h.Handler())
			mux.Handle(prefix, hh)
			mux.Handle(prefix+"/", hh)
			mounted = append(mounted, prefix)
		}
	}
	if sessionsHook != nil {
		// Every method: the handler answers 405 itself, in JSON.
		mux.Handle("/hooks/sessions", sessionsHook)
		mounted = append(mounted, "/hooks/sessions")
	}
	have := "none is configured"
	if len(mounted) > 0 {
		have = "configured: " + strings.Join(mounted, ", ")
	}
	mux.HandleFunc("/hooks/", func(w http.ResponseWriter, r *http.Request) {
		httpx.WriteError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no webhook at %s (%s)", r.URL.Path, have))
	})
	return mux
}

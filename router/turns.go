package router

import (
	"context"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/switchboardhq/switchboard/config"
	"github.com/switchboardhq/switchboard/store"
)

// An inbound message asks its session's runtime for a turn only when the
// session's route has a runtime. The router decides that as the message is
// appended and marks the others store.AppendRequest.NoTurn, so that the
// message of a session whose agent reads its log itself (an inbox route,
// or no route) costs the runtime's dispatcher no claim, no read and no
// cursor write. The decision is kept with the record: should the route get
// a runtime later (a new configuration), its agent is not handed the
// messages that came before.

// turns decides which sessions' inbound messages ask for a turn.
type turns struct {
	// all is true when every session's route has a runtime, none when no
	// session's has: the decision then needs no look at the session.
	all, none bool
	// inbox caches, by session id, whether a session's route has no
	// runtime. A session's metadata, which names its route, never changes.
	inbox *lru.Cache[string, bool]
}

// maxCachedRoutes bounds the cache of the sessions' routes.
const maxCachedRoutes = 16384

func newTurns(cfg *config.Config) *turns {
	t := &turns{all: true, none: true}
	for i := range cfg.Routes {
		if hasRuntime(&cfg.Routes[i]) {
			t.none = false
		} else {
			t.all = false
		}
	}
	// A session no route created is served by the default route.
	if d, _ := cfg.Route(cfg.Router.DefaultRoute); !hasRuntime(d) {
		t.all = false
	}
	if !t.all && !t.none {
		t.inbox, _ = lru.New[string, bool](maxCachedRoutes) // only a size < 1 fails
	}
	return t
}

// noTurn reports whether the inbound messages of session sessionID ask for
// no turn: its route (routeOf) has no runtime. When the session cannot be
// read it says false, and the dispatcher decides when it reads the message.
func (r *Router) noTurn(ctx context.Context, sessionID string) bool {
	t := r.turns
	switch {
	case t.all:
		return false
	case t.none:
		return true
	}
	if inbox, ok := t.inbox.Get(sessionID); ok {
		return inbox
	}
	sess, err := r.st.Session(ctx, sessionID)
	if err != nil {
		return false
	}
	inbox := !hasRuntime(r.routeOf(sess))
	t.inbox.Add(sessionID, inbox)
	return inbox
}

// hasRuntime reports whether route rt hands its sessions' messages to a
// runtime: it is not nil (no route) and not an inbox route, whose agent
// reads the log itself.
func hasRuntime(rt *config.Route) bool { return rt != nil && rt.Runtime != "inbox" }

// markTurn sets req.NoTurn on an inbound message for a session whose route
// has no runtime.
func (r *Router) markTurn(ctx context.Context, req *store.AppendRequest) {
	if req.ForRuntime() && r.noTurn(ctx, req.SessionID) {
		req.NoTurn = true
	}
}

// Log returns the store's log as the router appends to it: an inbound
// message for a session whose route has no runtime is appended NoTurn, as
// the router's own channels' messages are. The API appends through it.
func (r *Router) Log() store.Log { return routedLog{r.st, r} }

// routedLog is the Log that Router.Log returns.
type routedLog struct {
	store.Log
	r *Router
}

var (
	_ store.Log          = routedLog{}
	_ store.FollowReader = routedLog{}
)

// ReadFollowing reads as the store does for a follower (store.FollowReader).
func (l routedLog) ReadFollowing(ctx context.Context, sessionID string, after int64, limit int) ([]store.Record, error) {
	return store.ReadFollowing(ctx, l.Log, sessionID, after, limit)
}

// Append appends req, marked as the router decides.
func (l routedLog) Append(ctx context.Context, req store.AppendRequest) (store.AppendResult, error) {
	l.r.markTurn(ctx, &req)
	return l.Log.Append(ctx, req)
}

package store

import "sync"

// Hub fans out "session changed" signals to subscribers in this process. It
// backs Log.Subscribe in every backend. The zero value is ready to use and
// safe for concurrent use.
type Hub struct {
	mu   sync.Mutex
	subs map[string]map[chan struct{}]struct{}
}

// Subscribe registers for signals about sessionID. The channel has a buffer
// of one, so signals coalesce and Publish never blocks.
func (h *Hub) Subscribe(sessionID string) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	h.mu.Lock()
	if h.subs == nil {
		h.subs = make(map[string]map[chan struct{}]struct{})
	}
	set := h.subs[sessionID]
	if set == nil {
		set = make(map[chan struct{}]struct{})
		h.subs[sessionID] = set
	}
	set[ch] = struct{}{}
	h.mu.Unlock()
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			h.mu.Lock()
			delete(set, ch)
			if len(set) == 0 && h.subs[sessionID] != nil && len(h.subs[sessionID]) == 0 {
				delete(h.subs, sessionID)
			}
			h.mu.Unlock()
		})
	}
}

// AllSessions, passed to Subscribe, receives a signal for every session.
const AllSessions = "*"

// RuntimeWork, passed to Subscribe, receives a signal after records a
// runtime acts on (Record.ForRuntime) are appended to any session: the
// appends that can give a runtime's dispatcher work. Outputs, system
// records and messages appended NoTurn do not signal it, nor does
// anything else but PublishAll. (A session named "*work", like one named
// "*", would only cost its subscribers and these some needless wake-ups.)
const RuntimeWork = "*work"

// Publish signals every subscriber of sessionID, and of AllSessions, without
// blocking.
func (h *Hub) Publish(sessionID string) {
	h.mu.Lock()
	for _, key := range [2]string{sessionID, AllSessions} {
		for ch := range h.subs[key] {
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}
	h.mu.Unlock()
}

// PublishWork signals every subscriber of RuntimeWork (only), without
// blocking.
func (h *Hub) PublishWork() {
	h.mu.Lock()
	for ch := range h.subs[RuntimeWork] {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	h.mu.Unlock()
}

// PublishAll signals every subscriber of every session, without blocking
// (after a gap in which signals may have been missed).
func (h *Hub) PublishAll() {
	h.mu.Lock()
	for _, set := range h.subs {
		for ch := range set {
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}
	h.mu.Unlock()
}

package postgres

import "sync/atomic"

// newsSlots is how many counters news spreads the sessions over.
const newsSlots = 1024

// news counts what this process has heard of other processes' appends,
// per session: each notification of another process's append counts one
// in its session's slot (sessions share the newsSlots slots by a hash of
// their id), and a reconnection of the listener, after which any
// notification may have been lost, counts one in every slot. The listener
// counts before it signals the subscribers. The tail marks a session's
// records with its slot's count as the batch that appended them began,
// and a follower's read of records the tail holds needs no query while
// the count has not moved since (ReadFollowing): news of other sessions,
// save those sharing the slot, does not make it query. The zero value is
// ready to use.
type news [newsSlots]atomic.Uint64

// slot returns sessionID's counter.
func (n *news) slot(sessionID string) *atomic.Uint64 { return &n[fnv32a(sessionID)%newsSlots] }

// of returns the count of sessionID's slot.
func (n *news) of(sessionID string) uint64 { return n.slot(sessionID).Load() }

// hear counts news of sessionID, or of every session when sessionID is "".
func (n *news) hear(sessionID string) {
	if sessionID != "" {
		n.slot(sessionID).Add(1)
		return
	}
	for i := range n {
		n[i].Add(1)
	}
}

// fnv32a is the 32-bit FNV-1a hash of s, without hash/fnv's allocation.
func fnv32a(s string) uint32 {
	const offset, prime = 2166136261, 16777619
	h := uint32(offset)
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= prime
	}
	return h
}

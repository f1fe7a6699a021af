package runtime

import (
	"context"
	"sync"
)

// memMap is an in-memory SessionMap for tests.
type memMap struct {
	mu      sync.Mutex
	up      map[string]string // local → upstream
	local   map[string]string // upstream → local
	failSet error
}

func newMemMap() *memMap {
	return &memMap{up: map[string]string{}, local: map[string]string{}}
}

func (m *memMap) Upstream(_ context.Context, local string) (string, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	up, ok := m.up[local]
	return up, ok, nil
}

func (m *memMap) SetUpstream(_ context.Context, local, upstream string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failSet != nil {
		return m.failSet
	}
	m.up[local] = upstream
	m.local[upstream] = local
	return nil
}

func (m *memMap) Local(_ context.Context, upstream string) (string, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	local, ok := m.local[upstream]
	return local, ok, nil
}

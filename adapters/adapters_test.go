package adapters

import (
	"context"
	"strings"
	"testing"
)

type testConfig struct{ ok bool }

func (c *testConfig) Validate() error { return nil }

type testAdapter struct{ cfg *testConfig }

func (a *testAdapter) Deliver(context.Context, Delivery) (Receipt, error) { return Receipt{}, nil }

type otherConfig struct{}

func (otherConfig) Validate() error { return nil }

func TestTypedHandsTheAdapterItsOwnConfig(t *testing.T) {
	p := Typed("test", func() *testConfig { return &testConfig{ok: true} }, func(c *testConfig, _ Deps) (*testAdapter, error) {
		return &testAdapter{cfg: c}, nil
	})
	cfg := p.NewConfig()
	a, err := p.New(cfg, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	if ta, ok := a.(*testAdapter); !ok || !ta.cfg.ok {
		t.Fatalf("adapter %#v did not get the typed config", a)
	}
	if _, err := p.New(otherConfig{}, Deps{}); err == nil || !strings.Contains(err.Error(), "test: config is") {
		t.Fatalf("wrong config type: err = %v", err)
	}
}

func TestRegisterRefusesDuplicatesAndLookupFinds(t *testing.T) {
	p := Typed("registry-test", func() *testConfig { return &testConfig{} }, func(c *testConfig, _ Deps) (*testAdapter, error) { return &testAdapter{c}, nil })
	t.Cleanup(func() { // so that the test runs again under -count
		regMu.Lock()
		defer regMu.Unlock()
		delete(plugins, p.Name)
	})
	Register(p)
	if _, ok := Lookup("registry-test"); !ok {
		t.Fatal("registered plugin not found")
	}
	defer func() {
		if recover() == nil {
			t.Fatal("a duplicate registration did not panic")
		}
	}()
	Register(p)
}

package store

import "testing"

func TestHubSignalsSubscribersAndCoalesces(t *testing.T) {
	var h Hub
	a, cancelA := h.Subscribe("s1")
	all, cancelAll := h.Subscribe(AllSessions)
	other, cancelOther := h.Subscribe("s2")
	defer cancelAll()
	defer cancelOther()

	h.Publish("s1")
	h.Publish("s1") // coalesces: never blocks
	for name, ch := range map[string]<-chan struct{}{"s1": a, "all": all} {
		select {
		case <-ch:
		default:
			t.Fatalf("%s subscriber got no signal", name)
		}
		select {
		case <-ch:
			t.Fatalf("%s subscriber got two signals for coalesced publishes", name)
		default:
		}
	}
	select {
	case <-other:
		t.Fatal("s2 subscriber was signalled for s1")
	default:
	}

	cancelA()
	cancelA() // idempotent
	h.Publish("s1")
	select {
	case <-a:
		t.Fatal("cancelled subscriber was signalled")
	default:
	}
}

func TestHubPublishAll(t *testing.T) {
	var h Hub
	a, cancelA := h.Subscribe("a")
	defer cancelA()
	all, cancelAll := h.Subscribe(AllSessions)
	defer cancelAll()
	h.PublishAll()
	for name, ch := range map[string]<-chan struct{}{"a": a, "*": all} {
		select {
		case <-ch:
		default:
			t.Errorf("PublishAll did not signal the subscriber of %s", name)
		}
	}
}

package msgparts

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"testing"

	"github.com/switchboardhq/switchboard/adapters"
	"github.com/switchboardhq/switchboard/store/sqlite"
)

// fakeOps is a channel of comments in one conversation: ids "c1", "c2", …
type fakeOps struct {
	next     int
	comments map[string]string
	order    []string         // ids, in posting order
	calls    []string         // "edit c1", "post c2", "delete c3"
	fail     map[string]error // call → its error, once
}

func newFakeOps() *fakeOps { return &fakeOps{comments: map[string]string{}, fail: map[string]error{}} }

func (f *fakeOps) call(c string) error {
	f.calls = append(f.calls, c)
	if err, ok := f.fail[c]; ok {
		delete(f.fail, c)
		return err
	}
	return nil
}

func (f *fakeOps) Edit(_ context.Context, id, body string) error {
	if err := f.call("edit " + id); err != nil {
		return err
	}
	if _, ok := f.comments[id]; !ok {
		return fmt.Errorf("%w: 404", adapters.ErrGone)
	}
	f.comments[id] = body
	return nil
}

func (f *fakeOps) Post(_ context.Context, body string) (string, error) {
	id := fmt.Sprintf("c%d", f.next+1)
	if err := f.call("post " + id); err != nil {
		return "", err
	}
	f.next++
	f.comments[id] = body
	f.order = append(f.order, id)
	return id, nil
}

func (f *fakeOps) Delete(_ context.Context, id string) error {
	if err := f.call("delete " + id); err != nil {
		return err
	}
	if _, ok := f.comments[id]; !ok {
		return fmt.Errorf("%w: 404", adapters.ErrGone)
	}
	delete(f.comments, id)
	f.order = slices.DeleteFunc(f.order, func(o string) bool { return o == id })
	return nil
}

// texts returns the comments' bodies in order.
func (f *fakeOps) texts() []string {
	var out []string
	for _, id := range f.order {
		out = append(out, f.comments[id])
	}
	return out
}

// posted posts bodies as a new message.
func posted(t *testing.T, f *fakeOps, bodies ...string) Message {
	t.Helper()
	m := Message{Ref: "r", Delivery: "d"}
	for _, b := range bodies {
		id, err := f.Post(context.Background(), b)
		if err != nil {
			t.Fatal(err)
		}
		m.Parts = append(m.Parts, Part{ID: id, Sum: Sum(b)})
	}
	f.calls = nil
	return m
}

func TestApplyChangesOnlyWhatDiffers(t *testing.T) {
	f := newFakeOps()
	m := posted(t, f, "a", "b", "c")
	saves := 0
	if err := Apply(context.Background(), &m, []string{"a", "B", "c", "d"}, f, func() { saves++ }); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(f.calls, []string{"edit c2", "post c4"}) || saves != 2 {
		t.Errorf("calls %q, %d saves", f.calls, saves)
	}
	f.calls = nil
	if err := Apply(context.Background(), &m, []string{"x"}, f, func() {}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(f.calls, []string{"edit c1", "delete c4", "delete c3", "delete c2"}) {
		t.Errorf("calls %q", f.calls)
	}
	if !slices.Equal(f.texts(), []string{"x"}) || len(m.Parts) != 1 || m.First() != "c1" {
		t.Errorf("comments %q, message %+v", f.texts(), m)
	}
}

func TestApplyResumes(t *testing.T) {
	f := newFakeOps()
	m := posted(t, f, "a")
	f.fail["post c3"] = errors.New("502")
	if err := Apply(context.Background(), &m, []string{"A", "B", "C"}, f, func() {}); err == nil {
		t.Fatal("no error")
	}
	f.calls = nil
	if err := Apply(context.Background(), &m, []string{"A", "B", "C"}, f, func() {}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(f.calls, []string{"post c3"}) || !slices.Equal(f.texts(), []string{"A", "B", "C"}) {
		t.Errorf("calls %q, comments %q", f.calls, f.texts())
	}
}

func TestApplyWithAPartGone(t *testing.T) {
	f := newFakeOps()
	m := posted(t, f, "a", "b")
	delete(f.comments, "c2")
	if err := Apply(context.Background(), &m, []string{"A", "B"}, f, func() {}); !errors.Is(err, adapters.ErrGone) {
		t.Errorf("err = %v, want ErrGone", err)
	}
	// A surplus part already gone is simply done.
	m = posted(t, f, "x", "y")
	delete(f.comments, m.Parts[1].ID)
	if err := Apply(context.Background(), &m, []string{"X"}, f, func() {}); err != nil || len(m.Parts) != 1 {
		t.Errorf("err = %v, parts %+v", err, m.Parts)
	}
}

func TestWithdraw(t *testing.T) {
	f := newFakeOps()
	m := posted(t, f, "a", "b", "c")
	delete(f.comments, "c2") // a person deleted a part: still done
	if err := Withdraw(context.Background(), &m, f, func() {}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(f.calls, []string{"delete c3", "delete c2", "delete c1"}) || len(f.comments) != 0 {
		t.Errorf("calls %q, %d comments left", f.calls, len(f.comments))
	}
	if err := Withdraw(context.Background(), &m, f, func() {}); !errors.Is(err, adapters.ErrGone) {
		t.Errorf("withdrawing again: err = %v, want ErrGone", err)
	}
}

func TestBook(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "kv.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	for _, kv := range []bool{false, true} {
		t.Run(fmt.Sprintf("kv=%v", kv), func(t *testing.T) {
			b := NewBook(nil, "test")
			if kv {
				b = NewBook(st, "test")
			}
			m := Message{Ref: "acme/api#1", Delivery: "d", Parts: []Part{{ID: "1", Sum: "s1"}, {ID: "2"}}}
			if err := b.Put(ctx, m); err != nil {
				t.Fatal(err)
			}
			got, ok, err := b.Get(ctx, "acme/api#1", "1")
			if err != nil || !ok || !slices.Equal(got.Parts, m.Parts) || got.Delivery != "d" {
				t.Fatalf("Get = %+v %v %v", got, ok, err)
			}
			got.Parts[0].Sum = "changed" // the book keeps its own copy
			if again, _, _ := b.Get(ctx, "acme/api#1", "1"); again.Parts[0].Sum != "s1" {
				t.Errorf("the stored message changed with the returned one")
			}
			if _, ok, _ := b.Get(ctx, "acme/api#2", "1"); ok {
				t.Error("found a message of another conversation")
			}
			if err := b.Put(ctx, Message{Ref: "x"}); err == nil {
				t.Error("stored a message without parts")
			}
		})
	}
	// Another process sharing the store finds it.
	if _, ok, err := NewBook(st, "test").Get(ctx, "acme/api#1", "1"); !ok || err != nil {
		t.Errorf("another book on the store: %v %v", ok, err)
	}
}

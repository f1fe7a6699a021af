package envelope

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestSanitizeMakesTextFieldsStorable(t *testing.T) {
	e := valid()
	raw := string(e.Raw)
	e.ID = "client:a\x00b"
	e.Source = "cli\x00ent"
	e.Actor.ID = "client:\xffada"
	e.Actor.Display = "A\x00da \xe9"
	e.Conversation.Ref = "thread\x00-42"
	e.Text = "=00 in a body: \x00 and latin-1 \xe9t\xe9"
	e.Refs = Refs{"pr": "4\x002", "fi\x00le": "a%80\x80", "file": "kept"}
	if !e.Sanitize() {
		t.Fatal("Sanitize reported no change")
	}
	for name, v := range map[string]string{"id": e.ID, "source": e.Source, "actor.id": e.Actor.ID,
		"actor.display": e.Actor.Display, "conversation.ref": e.Conversation.Ref, "text": e.Text} {
		if !utf8.ValidString(v) || strings.ContainsRune(v, 0) {
			t.Errorf("%s = %q is not storable", name, v)
		}
	}
	if e.ID != "client:ab" || e.Text != "=00 in a body:  and latin-1 \uFFFDt\uFFFD" || e.Actor.Display != "Ada \uFFFD" {
		t.Errorf("cleaned to id %q, text %q, display %q", e.ID, e.Text, e.Actor.Display)
	}
	want := Refs{"pr": "42", "file": "kept"}
	if len(e.Refs) != len(want) {
		t.Errorf("refs = %q, want %q", e.Refs, want)
	}
	for k, v := range want {
		if e.Refs[k] != v {
			t.Errorf("refs[%q] = %q, want %q (refs %q)", k, e.Refs[k], v, e.Refs)
		}
	}
	if string(e.Raw) != raw {
		t.Error("Sanitize changed raw")
	}
	if err := e.Validate(0); err != nil {
		t.Errorf("the cleaned envelope does not validate: %v", err)
	}
	clean := valid()
	if clean.Sanitize() {
		t.Error("Sanitize changed a clean envelope")
	}
}

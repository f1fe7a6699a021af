package slack

import (
	"testing"

	"github.com/slack-go/slack"
)

func TestDisplayName(t *testing.T) {
	for want, u := range map[string]slack.User{
		"ada":          {Name: "alovelace", Profile: slack.UserProfile{DisplayName: "ada", RealName: "Ada Lovelace"}},
		"Ada Lovelace": {Name: "alovelace", Profile: slack.UserProfile{RealName: "Ada Lovelace"}},
		"Grace":        {Name: "ghopper", RealName: "Grace"},
		"ghopper":      {Name: "ghopper"},
	} {
		if got := displayName(&u); got != want {
			t.Errorf("displayName = %q, want %q", got, want)
		}
	}
}

package all

import (
	"slices"
	"testing"

	"github.com/switchboardhq/switchboard/adapters"
)

func TestEveryChannelIsRegistered(t *testing.T) {
	for _, name := range []string{"email", "github", "jira", "slack"} {
		if !slices.Contains(adapters.Names(), name) {
			t.Errorf("adapter %q is not registered (have %v)", name, adapters.Names())
		}
	}
}

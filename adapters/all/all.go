// Package all registers every channel adapter. The gateway imports it for
// its side effects:
//
//	import _ "github.com/switchboardhq/switchboard/adapters/all"
package all

import (
	_ "github.com/switchboardhq/switchboard/adapters/email"  // registers "email"
	_ "github.com/switchboardhq/switchboard/adapters/github" // registers "github"
	_ "github.com/switchboardhq/switchboard/adapters/jira"   // registers "jira"
	_ "github.com/switchboardhq/switchboard/adapters/slack"  // registers "slack"
)

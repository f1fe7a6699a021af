package slack

import (
	"context"
	"time"

	"github.com/slack-go/slack"
)

// negativeTTL is how long a failed lookup is remembered, so that a slow or
// failing users.info does not cost every event its timeout.
const negativeTTL = time.Minute

// displayName picks the name Slack shows for u: the profile's display name,
// else the real name, else the username.
func displayName(u *slack.User) string {
	switch {
	case u.Profile.DisplayName != "":
		return u.Profile.DisplayName
	case u.Profile.RealName != "":
		return u.Profile.RealName
	case u.RealName != "":
		return u.RealName
	}
	return u.Name
}

// userName resolves a user id to its display name through the cache and
// users.info. It returns "" when the name is unknown.
func (a *Adapter) userName(ctx context.Context, id string) string {
	if id == "" {
		return ""
	}
	return a.users.Get(ctx, id, a.fetchUserName)
}

// fetchUserName asks users.info for the display name of id.
func (a *Adapter) fetchUserName(ctx context.Context, id string) (string, error) {
	u, err := a.api.GetUserInfoContext(ctx, id)
	if err != nil {
		err = a.classify(err)
		if ctx.Err() == nil {
			a.log.Warn("users.info failed", "user", id, "err", err)
		}
		return "", err
	}
	return displayName(u), nil
}

// links.js: where a conversation lives, from its source and ref as the
// adapters write them. Returns "" when there is no web page to link to.
//   slack:  <team>/<channel>/<thread ts>
//   github: <owner>/<repo>#<number>[/review-thread/<comment id>]
//   jira:   <site host>/<issue key>
//   email:  a Message-ID (no web page)

export function conversationURL(conv) {
  const ref = String(conv.ref || "");
  let m;
  switch (conv.source) {
    case "slack":
      if ((m = /^([A-Z0-9]+)\/([A-Z0-9]+)\/(\d+\.\d+)$/i.exec(ref))) {
        return `https://app.slack.com/client/${m[1]}/${m[2]}/thread/${m[2]}-${m[3]}`;
      }
      if ((m = /^([A-Z0-9]+)\/([A-Z0-9]+)/i.exec(ref))) return `https://app.slack.com/client/${m[1]}/${m[2]}`;
      return "";
    case "github":
      if ((m = /^([\w.-]+)\/([\w.-]+)#(\d+)(?:\/review-thread\/(\d+))?$/.exec(ref))) {
        const base = `https://github.com/${m[1]}/${m[2]}/issues/${m[3]}`;
        return m[4] ? `https://github.com/${m[1]}/${m[2]}/pull/${m[3]}#discussion_r${m[4]}` : base;
      }
      return "";
    case "jira":
      if ((m = /^([a-z0-9.-]+\.[a-z]{2,})(?::\d+)?\/([A-Z][A-Z0-9_]*-\d+)$/i.exec(ref))) {
        return `https://${m[1]}/browse/${m[2]}`;
      }
      return "";
  }
  return "";
}

/** where says in words where a conversation lives. */
export function where(conv) {
  switch (conv.source) {
    case "slack": return "Slack thread";
    case "github": return "GitHub issue or pull request";
    case "jira": return "Jira issue";
    case "email": return "email thread " + conv.ref;
    case "client": return "API thread";
  }
  return conv.source;
}

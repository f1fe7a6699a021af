// markdown.js: a small, safe Markdown subset rendered straight to DOM nodes.
// Text only ever becomes text nodes: no string of the input is parsed as
// HTML. Supported: paragraphs, # headings, - and 1. lists, > quotes,
// ``` fenced code, `code`, **bold**, *em*/_em_, ~~strike~~ and
// [links](https://…) (http, https and mailto only).

const SAFE_URL = /^(https?:|mailto:)/i;

/** render returns a <div class="md"> holding text rendered as Markdown. */
export function render(text) {
  const root = document.createElement("div");
  root.className = "md";
  const lines = String(text ?? "").replace(/\r\n?/g, "\n").split("\n");
  let i = 0;
  let para = [];
  const flush = () => {
    if (para.length) {
      const p = document.createElement("p");
      para.forEach((l, j) => { if (j) p.append(document.createElement("br")); inline(p, l); });
      root.append(p);
      para = [];
    }
  };
  while (i < lines.length) {
    const line = lines[i];
    let m;
    if (/^\s*```/.test(line)) {
      flush();
      const code = [];
      for (i++; i < lines.length && !/^\s*```/.test(lines[i]); i++) code.push(lines[i]);
      i++;
      const pre = document.createElement("pre");
      const c = document.createElement("code");
      c.textContent = code.join("\n");
      pre.append(c);
      root.append(pre);
      continue;
    }
    if ((m = /^(#{1,6})\s+(.*)$/.exec(line))) {
      flush();
      const h = document.createElement("h" + Math.min(6, m[1].length + 2));
      inline(h, m[2]);
      root.append(h);
    } else if (/^\s*([-*+]|\d+[.)])\s+/.test(line)) {
      flush();
      const ordered = /^\s*\d/.test(line);
      const list = document.createElement(ordered ? "ol" : "ul");
      while (i < lines.length && (m = /^\s*(?:[-*+]|\d+[.)])\s+(.*)$/.exec(lines[i]))) {
        const li = document.createElement("li");
        inline(li, m[1]);
        list.append(li);
        i++;
      }
      root.append(list);
      continue;
    } else if ((m = /^>\s?(.*)$/.exec(line))) {
      flush();
      const bq = document.createElement("blockquote");
      const quoted = [];
      while (i < lines.length && (m = /^>\s?(.*)$/.exec(lines[i]))) { quoted.push(m[1]); i++; }
      bq.append(render(quoted.join("\n")));
      root.append(bq);
      continue;
    } else if (line.trim() === "") {
      flush();
    } else {
      para.push(line);
    }
    i++;
  }
  flush();
  return root;
}

// Inline patterns, tried in order at each position.
const INLINE = [
  [/^`([^`]+)`/, (m) => tag("code", m[1])],
  [/^\*\*(.+?)\*\*/, (m) => nest("strong", m[1])],
  [/^__(.+?)__/, (m) => nest("strong", m[1])],
  [/^~~(.+?)~~/, (m) => nest("del", m[1])],
  [/^\*([^*\s][^*]*?)\*/, (m) => nest("em", m[1])],
  [/^_([^_\s][^_]*?)_(?![A-Za-z0-9])/, (m) => nest("em", m[1])],
  [/^\[([^\]]+)\]\(([^()\s]+)\)/, (m) => link(m[1], m[2])],
  [/^<?(https?:\/\/[^\s<>]+[^\s<>.,;:!?)'"])>?/, (m) => link(m[1], m[1], true)],
];

function tag(name, text) {
  const n = document.createElement(name);
  n.textContent = text;
  return n;
}

function nest(name, text) {
  const n = document.createElement(name);
  inline(n, text);
  return n;
}

// link makes an <a> for a safe href, with text rendered inline, or as it
// is when verbatim (a bare URL, which would otherwise match itself again).
function link(text, href, verbatim = false) {
  if (!SAFE_URL.test(href)) return document.createTextNode(`[${text}](${href})`);
  const a = document.createElement("a");
  a.href = href;
  a.rel = "noopener noreferrer nofollow";
  a.target = "_blank";
  if (verbatim) a.textContent = text;
  else inline(a, text, true);
  return a;
}

/**
 * inline appends text to parent with the inline markup rendered; inside a
 * link (noLinks), links are left as text.
 */
function inline(parent, text, noLinks = false) {
  let plain = "";
  let i = 0;
  outer: while (i < text.length) {
    const rest = text.slice(i);
    if ("`*_~[<h".includes(rest[0])) {
      for (const [re, make] of INLINE) {
        if (noLinks && (rest[0] === "[" || rest[0] === "<" || rest[0] === "h")) break;
        const m = re.exec(rest);
        if (m && (rest[0] !== "_" || i === 0 || !/[A-Za-z0-9]/.test(text[i - 1]))) {
          if (plain) { parent.append(document.createTextNode(plain)); plain = ""; }
          parent.append(make(m));
          i += m[0].length;
          continue outer;
        }
      }
    }
    plain += text[i];
    i++;
  }
  if (plain) parent.append(document.createTextNode(plain));
}

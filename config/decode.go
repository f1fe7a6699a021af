package config

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// yamlLine is the "line N: " yaml puts before each of a TypeError's
// messages.
var yamlLine = regexp.MustCompile(`^line (\d+): (.*)$`)

// explainDecode turns err, from decoding data (node marshalled) into v,
// into errors that name their key, as every configuration error does:
// "max_body: cannot unmarshal !!str `lots` into int64 (line 12)",
// "no_such_key: is not a known key of slack.Config (line 3)",
// "lookup_timeout: want a duration like 30s or 5m, got \"soon\" (line 7)".
// The line is node's (the configuration file's), not data's.
func explainDecode(node *yaml.Node, data []byte, v any, err error) error {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		// yaml's lines are data's: find the key on each line in a parse of
		// data, which has node's shape.
		var again yaml.Node
		if yaml.Unmarshal(data, &again) != nil {
			again = yaml.Node{}
		}
		errs := make([]error, len(te.Errors))
		for i, m := range te.Errors {
			errs[i] = errors.New(strings.Replace(m, "not found in type", "is not a known key of", 1))
			sm := yamlLine.FindStringSubmatch(m)
			if sm == nil {
				continue
			}
			n, _ := strconv.Atoi(sm[1])
			if key, orig := keyOnLine(&again, node, n, "", typeErrorMatch(sm[2])); key != "" {
				msg := strings.Replace(sm[2], "not found in type", "is not a known key of", 1)
				if rest, ok := strings.CutPrefix(msg, "field "); ok {
					_, msg, _ = strings.Cut(rest, " ") // the key is named already
				}
				errs[i] = keyErr(key, orig, msg)
			}
		}
		return errors.Join(errs...)
	}
	// An error of a value's own decoding (a duration's) names no line:
	// find the key whose value alone fails so.
	if key, orig := failingKey(node, v, ""); key != "" {
		return keyErr(key, orig, err.Error())
	}
	return err
}

// keyErr is a FieldError for key, with the line of orig when known.
func keyErr(key string, orig *yaml.Node, msg string) error {
	if orig != nil && orig.Line > 0 {
		msg += fmt.Sprintf(" (line %d)", orig.Line)
	}
	return &FieldError{Key: key, Message: msg}
}

// keyOnLine walks n and orig, a node of the same shape, and returns the
// innermost key (dotted, from prefix; "[i]" for an item of a list) on line
// of n whose key or scalar value match accepts, with its node in orig.
func keyOnLine(n, orig *yaml.Node, line int, prefix string, match func(k, v *yaml.Node) bool) (string, *yaml.Node) {
	n, orig = unwrap(n), unwrap(orig)
	if n == nil || orig == nil || n.Kind != orig.Kind || len(n.Content) != len(orig.Content) {
		return "", nil
	}
	try := func(k, v *yaml.Node, key string, o *yaml.Node) (string, *yaml.Node) {
		if found, on := keyOnLine(v, o, line, key, match); found != "" {
			return found, on
		}
		if (k != nil && k.Line == line || v.Line == line && v.Kind == yaml.ScalarNode) && match(k, v) {
			return key, o
		}
		return "", nil
	}
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			key := n.Content[i].Value
			if prefix != "" {
				key = prefix + "." + key
			}
			if found, on := try(n.Content[i], n.Content[i+1], key, orig.Content[i+1]); found != "" {
				if on == orig.Content[i+1] {
					on = orig.Content[i] // the key's line
				}
				return found, on
			}
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			if found, on := try(nil, c, prefix+"["+strconv.Itoa(i)+"]", orig.Content[i]); found != "" {
				return found, on
			}
		}
	}
	return "", nil
}

// typeErrorMatch returns what a TypeError's message (after its line) is
// about: the key of "field x not found in type T", the scalar value of
// "cannot unmarshal !!str `maybe` into bool" (which yaml shortens to its
// first 7 bytes and "..." beyond 10), else anything.
func typeErrorMatch(msg string) func(k, v *yaml.Node) bool {
	if rest, ok := strings.CutPrefix(msg, "field "); ok {
		name, _, _ := strings.Cut(rest, " ")
		return func(k, _ *yaml.Node) bool { return k != nil && k.Value == name }
	}
	if _, rest, ok := strings.Cut(msg, " `"); ok {
		if val, _, ok := strings.Cut(rest, "` into "); ok {
			if short, ok := strings.CutSuffix(val, "..."); ok {
				return func(_, v *yaml.Node) bool { return v.Kind == yaml.ScalarNode && strings.HasPrefix(v.Value, short) }
			}
			return func(_, v *yaml.Node) bool { return v.Kind == yaml.ScalarNode && v.Value == val }
		}
	}
	return func(_, _ *yaml.Node) bool { return true }
}

// failingKey returns the innermost key (dotted, from prefix) of the mapping
// node whose entry alone fails to decode into a new value of v's type, with
// its key node; "" when there is none.
func failingKey(node *yaml.Node, v any, prefix string) (string, *yaml.Node) {
	t := reflect.TypeOf(v)
	if t == nil || t.Kind() != reflect.Pointer {
		return "", nil
	}
	m := unwrap(node)
	if m == nil || m.Kind != yaml.MappingNode {
		return "", nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		key := m.Content[i].Value
		if prefix != "" {
			key = prefix + "." + key
		}
		if !entryFails(m.Content[i], m.Content[i+1], prefix, t) {
			continue
		}
		if k, o := failingKey(m.Content[i+1], v, key); k != "" {
			return k, o
		}
		return key, m.Content[i]
	}
	return "", nil
}

// entryFails reports whether the mapping of the one entry k: val, nested
// under the dotted keys of prefix, fails to decode into a new t.
func entryFails(k, val *yaml.Node, prefix string, t reflect.Type) bool {
	doc := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Content: []*yaml.Node{k, val}}
	if prefix != "" {
		parts := strings.Split(prefix, ".")
		for i := len(parts) - 1; i >= 0; i-- {
			pk := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: parts[i]}
			doc = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Content: []*yaml.Node{pk, doc}}
		}
	}
	data, err := yaml.Marshal(doc)
	if err != nil {
		return false
	}
	return decodeStrict(data, reflect.New(t.Elem()).Interface()) != nil
}

// unwrap is the content of a document node, else n.
func unwrap(n *yaml.Node) *yaml.Node {
	if n != nil && n.Kind == yaml.DocumentNode {
		if len(n.Content) != 1 {
			return nil
		}
		return n.Content[0]
	}
	return n
}

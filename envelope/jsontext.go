package envelope

import (
	"errors"
	"fmt"
	"unicode/utf16"
	"unicode/utf8"
)

// Errors of CheckJSONText; test with errors.Is.
var (
	// ErrInvalidUTF8: the text holds bytes that are not UTF-8.
	ErrInvalidUTF8 = errors.New("not valid UTF-8")
	// ErrLoneSurrogate: a \u escape names half of a UTF-16 surrogate pair
	// (\uD800 to \uDFFF) without its other half.
	ErrLoneSurrogate = errors.New("lone surrogate escape")
)

// CheckJSONText checks that the JSON text raw encodes only Unicode
// characters: it must be UTF-8, and every \u escape of a surrogate
// (\uD800-\uDFFF) must be a high one (\uD800-\uDBFF) directly followed by a
// low one (\uDC00-\uDFFF), together one character. encoding/json quietly
// turns a lone surrogate into U+FFFD, so such text decodes here but a raw
// kept byte for byte (Envelope.Raw) is refused by strict readers
// (PostgreSQL's json, Python's json with surrogates checked, Rust's
// serde_json). The error names the byte offset and wraps ErrInvalidUTF8 or
// ErrLoneSurrogate.
//
// It does not check that raw is JSON (json.Valid does): escapes are found
// wherever a backslash is, which outside a string is a syntax error anyway.
func CheckJSONText(raw []byte) error {
	if !utf8.Valid(raw) {
		i := 0
		for i < len(raw) {
			r, n := utf8.DecodeRune(raw[i:])
			if r == utf8.RuneError && n <= 1 {
				break
			}
			i += n
		}
		return fmt.Errorf("byte %d: %w", i, ErrInvalidUTF8)
	}
	for i := 0; i < len(raw); i++ {
		if raw[i] != '\\' {
			continue
		}
		r, ok := hex4(raw, i+1)
		if !ok {
			i++ // a one-character escape (\n, \\, \", …): skip its character
			continue
		}
		switch {
		case utf16.IsSurrogate(r) && r < 0xDC00:
			if low, ok := hex4(raw, i+7); ok && raw[i+6] == '\\' && low >= 0xDC00 && low <= 0xDFFF {
				i += 11 // the pair
				continue
			}
			return loneSurrogate(raw, i)
		case utf16.IsSurrogate(r):
			return loneSurrogate(raw, i)
		}
		i += 5
	}
	return nil
}

func loneSurrogate(raw []byte, i int) error {
	return fmt.Errorf("byte %d: %w %s: send the character itself, or both halves of its UTF-16 pair", i, ErrLoneSurrogate, raw[i:i+6])
}

// hex4 decodes the "u" and four hex digits of a \u escape at raw[i:].
func hex4(raw []byte, i int) (rune, bool) {
	if i+5 > len(raw) || raw[i] != 'u' {
		return 0, false
	}
	var r rune
	for _, c := range raw[i+1 : i+5] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

package api

import "testing"

func TestCheckContentType(t *testing.T) {
	for ct, ok := range map[string]bool{
		"":                                  true,
		"application/json":                  true,
		"application/json; charset=utf-8":   true,
		"application/x-www-form-urlencoded": true, // curl -d
		"text/plain":                        true,
		"application/merge-patch+json":      true,
		"application/octet-stream":          true,
		"multipart/form-data; boundary=x":   false,
		"image/png":                         false,
		"application/xml":                   false,
		"application/atom+xml":              false,
		"text/html":                         false,
		"not a type":                        false,
	} {
		if err := checkContentType(ct); (err == nil) != ok {
			t.Errorf("checkContentType(%q) = %v, want ok=%v", ct, err, ok)
		}
	}
}

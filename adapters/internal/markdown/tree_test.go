package markdown

import (
	"testing"

	"github.com/yuin/goldmark/ast"
	extast "github.com/yuin/goldmark/extension/ast"
)

func TestParse(t *testing.T) {
	src := []byte("# Title\n\nSome **bold** and ~~gone~~ text, see https://example.com.\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n- [x] done\n")
	doc := Parse(src)
	kinds := map[ast.NodeKind]int{}
	if err := ast.Walk(doc, func(n ast.Node, entering bool) (ast.WalkStatus, error) {
		if entering {
			kinds[n.Kind()]++
		}
		return ast.WalkContinue, nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, k := range []ast.NodeKind{ast.KindHeading, ast.KindEmphasis, extast.KindStrikethrough, ast.KindAutoLink,
		extast.KindTable, extast.KindTaskCheckBox} {
		if kinds[k] == 0 {
			t.Errorf("no %s in the tree of %q", k, src)
		}
	}
}

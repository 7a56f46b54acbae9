package server

import (
	"fmt"
	"strings"
	"testing"

	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/parser"
)

// fragmentBomb is a document whose fragment Fi spreads F(i+1) twice:
// n+2 lines of text that expand to 2^n copies of the last fragment.
func fragmentBomb(n int) string {
	var b strings.Builder
	b.WriteString("query { ...F0 }\n")
	for i := range n {
		fmt.Fprintf(&b, "fragment F%d on Query { ...F%d ...F%d }\n", i, i+1, i+1)
	}
	fmt.Fprintf(&b, "fragment F%d on Query { me { user } }\n", n)
	return b.String()
}

func TestShape(t *testing.T) {
	for _, tc := range []struct {
		name            string
		query           string
		size, depth     int
		wantFragmentsIn int
	}{
		{"flat", `{ a b c }`, 3, 1, 0},
		{"nested", `{ a { b { c } } }`, 3, 3, 0},
		{"introspection left out of depth", `{ __schema { types { name } } a }`, 4, 1, 0},
		{"inline fragment", `{ ... on Query { a { b } } }`, 3, 2, 0},
		{"spread", `{ ...F a } fragment F on Query { x { y } }`, 4, 2, 1},
		{"bomb of 10", fragmentBomb(10), 1<<10*2 + 2*(1<<10-1) + 1, 2, 11},
		{"bomb of 64 saturates", fragmentBomb(64), 1 << 40, 2, 65},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc, err := parser.ParseQuery(&ast.Source{Input: tc.query})
			if err != nil {
				t.Fatal(err)
			}
			s := newShape(doc)
			m := s.selections(doc.Operations[0].SelectionSet)
			if m.size != tc.size || m.depth != tc.depth {
				t.Fatalf("size %d depth %d, want %d %d", m.size, m.depth, tc.size, tc.depth)
			}
			// Each fragment was measured once: the memo holds every one.
			if len(s.memo) != tc.wantFragmentsIn {
				t.Fatalf("%d fragments measured, want %d", len(s.memo), tc.wantFragmentsIn)
			}
		})
	}
}

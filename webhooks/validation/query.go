package validation

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"text/template/parse"

	"github.com/sluice-mesh/sluice/internal/promquery"
)

// queryVariables are the names a query template may use: the fields of promquery.Vars, which the
// Rollout controller fills in.
var queryVariables = func() []string {
	t := reflect.TypeFor[promquery.Vars]()
	names := make([]string, 0, t.NumField())
	for i := range t.NumField() {
		names = append(names, t.Field(i).Name)
	}
	slices.Sort(names)
	return names
}()

// checkQueryTemplate accepts a query whose template actions are plain substitutions of known
// variables ({{ .Interval }}): no conditionals, loops, functions or variables, so that rendering
// it is cheap and cannot fail at analysis time.
func checkQueryTemplate(query string) error {
	known := "{{ ." + strings.Join(queryVariables, " }}, {{ .") + " }}"
	trees, err := parse.Parse("query", query, "", "", map[string]any{})
	if err != nil {
		return fmt.Errorf("not a valid query template (%v); the only template actions allowed are %s", trimParseError(err), known)
	}
	tree := trees["query"]
	if len(trees) != 1 || tree == nil {
		return fmt.Errorf("defines templates; the only template actions allowed are %s", known)
	}
	for _, n := range tree.Root.Nodes {
		switch n := n.(type) {
		case *parse.TextNode:
		case *parse.ActionNode:
			if name, ok := substitution(n); !ok {
				return fmt.Errorf("uses %s; the only template actions allowed are %s", n, known)
			} else if !slices.Contains(queryVariables, name) {
				return fmt.Errorf("uses {{ .%s }}, which is not a variable; the variables are %s", name, known)
			}
		default:
			return fmt.Errorf("uses %s; the only template actions allowed are %s", n, known)
		}
	}
	return nil
}

// substitution returns the field name of an action that is exactly {{ .Name }}.
func substitution(n *parse.ActionNode) (string, bool) {
	if len(n.Pipe.Decl) != 0 || len(n.Pipe.Cmds) != 1 || len(n.Pipe.Cmds[0].Args) != 1 {
		return "", false
	}
	f, ok := n.Pipe.Cmds[0].Args[0].(*parse.FieldNode)
	if !ok || len(f.Ident) != 1 {
		return "", false
	}
	return f.Ident[0], true
}

// trimParseError drops the "template: query:1:" prefix of a parse error.
func trimParseError(err error) string {
	msg := err.Error()
	if i := strings.Index(msg, ": "); strings.HasPrefix(msg, "template: ") && i >= 0 {
		return msg[i+2:]
	}
	return msg
}

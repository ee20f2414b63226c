package translate

import (
	"fmt"
	"sort"

	"github.com/sluice-mesh/sluice/xds/ir"
)

// Problem is something in one object that the translation could not honour. The controller turns
// it into a condition on that object; the rest of the mesh is still translated.
type Problem struct {
	Object ir.ObjectRef `json:"object"`
	// Reason is a CamelCase condition reason, e.g. Conflicted or SubsetNotFound.
	Reason string `json:"reason"`
	// Field is the path of the field at fault, e.g. spec.mirror.service.
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
	// Warning marks a problem that does not stop the object from applying: a kind of client
	// (proxyless gRPC) cannot honour a field, or a subset has no endpoints yet. The controller
	// keeps Accepted True and names these in its message.
	Warning bool `json:"warning,omitempty"`
}

func (p Problem) String() string {
	if p.Field == "" {
		return fmt.Sprintf("%s: %s", p.Object, p.Message)
	}
	return fmt.Sprintf("%s: %s: %s", p.Object, p.Field, p.Message)
}

// Problems is every problem of one translation.
type Problems []Problem

func (ps *Problems) add(obj ir.ObjectRef, reason, field, format string, args ...any) {
	*ps = append(*ps, Problem{Object: obj, Reason: reason, Field: field, Message: fmt.Sprintf(format, args...)})
}

func (ps *Problems) warn(obj ir.ObjectRef, reason, field, format string, args ...any) {
	*ps = append(*ps, Problem{Object: obj, Reason: reason, Field: field, Message: fmt.Sprintf(format, args...), Warning: true})
}

// For returns the problems of one object.
func (ps Problems) For(obj ir.ObjectRef) Problems {
	var out Problems
	for _, p := range ps {
		if p.Object == obj {
			out = append(out, p)
		}
	}
	return out
}

func (ps Problems) sort() {
	sort.SliceStable(ps, func(i, j int) bool {
		a, b := ps[i], ps[j]
		if a.Object != b.Object {
			return a.Object.String() < b.Object.String()
		}
		if a.Warning != b.Warning {
			return !a.Warning
		}
		return a.Field < b.Field
	})
}

// Package validation holds the admission rules of Sluice's three kinds that the CRDs' OpenAPI
// schema and CEL rules cannot express: rules across objects (the Deployment and Service a Rollout
// names, the pods a TrafficPolicy's subsets pick, a ZeroTrust's issuer, a second object for the
// same target), query templates, bounded RE2 compilation, and warnings for risky but legal settings.
//
// The rules are pure: they read the object, the object it replaces (on update) and the related
// objects the webhook gathered, and return field errors, whose messages say how to fix them, and
// admission warnings. A referenced object that does not exist is a warning, never an error: GitOps
// tools apply objects in any order. What contradicts an object that exists is an error.
package validation

import (
	"fmt"

	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Result is what the rules found about one object.
type Result struct {
	// Errors reject the object; each names its field and says what to do.
	Errors field.ErrorList
	// Warnings are returned to the client (kubectl prints them); the object is admitted.
	Warnings []string
}

func (r *Result) fail(err *field.Error) { r.Errors = append(r.Errors, err) }

// warn adds a warning, prefixed with the field it is about.
func (r *Result) warn(path *field.Path, msg string) {
	r.Warnings = append(r.Warnings, path.String()+": "+msg)
}

// MaxWarnings bounds the warnings of one object: the API server cuts the warnings of a response
// short after 4 KiB.
const MaxWarnings = 10

// done caps the warnings and returns the result.
func (r Result) done() Result {
	if n := len(r.Warnings); n > MaxWarnings {
		r.Warnings = append(r.Warnings[:MaxWarnings-1:MaxWarnings-1], fmt.Sprintf("%d more warnings are left out", n-MaxWarnings+1))
	}
	return r
}

package validation

import (
	"fmt"
	"regexp/syntax"

	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Bounds on the regular expressions of one object, so that compiling them costs little whatever
// the input: RE2 matches in linear time, but a large repetition count can compile to a huge
// program (`(a{1000}){1000}`), and an object holds up to several hundred regexes.
const (
	// MaxRegexLength is the longest regex, in bytes (the CRDs say the same).
	MaxRegexLength = 1024
	// MaxRegexInstructions bounds the compiled program of one regex.
	MaxRegexInstructions = 5000
	// MaxRegexBytes bounds the regexes of one object together.
	MaxRegexBytes = 64 << 10
	// MaxObjectRegexInstructions bounds the programs of one object's regexes together, which
	// bounds the time compiling them takes (BenchmarkLargest).
	MaxObjectRegexInstructions = 100_000
	// EnvoyRegexProgramSize is Envoy's default limit on an RE2 program
	// (runtime re2.max_program_size.error_level): above it Envoy rejects the whole route table.
	// Go's program size only approximates RE2's, so exceeding it is a warning.
	EnvoyRegexProgramSize = 100
)

// regexes checks the regexes of one object against the bounds, in the order they are given.
type regexes struct {
	bytes, instructions int
	// over is set once the object's regexes exceed a bound; later ones are not compiled.
	over bool
}

// check compiles expr, the value of path, as the proxies will (RE2 syntax, whole-value match).
func (rx *regexes) check(r *Result, path *field.Path, expr string) {
	if rx.over {
		return
	}
	rx.bytes += len(expr)
	if rx.bytes > MaxRegexBytes {
		rx.over = true
		r.fail(field.Invalid(path, short(expr), fmt.Sprintf(
			"the object's regular expressions add up to more than %d bytes; use fewer or shorter ones (prefix or exact matches where they do)", MaxRegexBytes)))
		return
	}
	size, err := programSize(expr)
	rx.instructions += size
	switch {
	case rx.instructions > MaxObjectRegexInstructions:
		rx.over = true
		r.fail(field.Invalid(path, short(expr), fmt.Sprintf(
			"the object's regular expressions compile to more than %d instructions together; use fewer or simpler ones (prefix or exact matches where they do)", MaxObjectRegexInstructions)))
	case err != nil:
		r.fail(field.Invalid(path, short(expr), err.Error()))
	case size > EnvoyRegexProgramSize:
		r.warn(path, fmt.Sprintf(
			"compiles to about %d RE2 instructions; Envoy rejects regexes above re2.max_program_size.error_level (100 by default): simplify it or raise that runtime limit", size))
	}
}

// programSize parses and compiles expr within the bounds and returns its program's size.
func programSize(expr string) (int, error) {
	if len(expr) > MaxRegexLength {
		return 0, fmt.Errorf("the regular expression is longer than %d bytes; shorten it", MaxRegexLength)
	}
	re, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return 0, fmt.Errorf("not a valid RE2 regular expression (%w); RE2 has no lookaround or backreferences", err)
	}
	tooBig := fmt.Errorf("the regular expression compiles to more than %d instructions; simplify it (smaller repetition counts such as {1,10} instead of {1,1000}, fewer nested groups)", MaxRegexInstructions)
	// Estimate before compiling, so that a huge program is never built.
	if estimate(re, MaxRegexInstructions) > MaxRegexInstructions {
		return 0, tooBig
	}
	prog, err := syntax.Compile(re.Simplify())
	if err != nil {
		return 0, fmt.Errorf("not a valid RE2 regular expression (%w)", err)
	}
	if len(prog.Inst) > MaxRegexInstructions {
		return 0, tooBig
	}
	return len(prog.Inst), nil
}

// estimate is an upper bound of the instructions re compiles to, capped just above limit so that
// nested repetitions cannot overflow.
func estimate(re *syntax.Regexp, limit int) int {
	capped := func(n int) int { return min(n, limit+1) }
	switch re.Op {
	case syntax.OpLiteral:
		return capped(len(re.Rune) + 1)
	case syntax.OpCapture, syntax.OpStar, syntax.OpPlus, syntax.OpQuest:
		return capped(estimate(re.Sub[0], limit) + 2)
	case syntax.OpRepeat:
		n := re.Max
		if n < 0 {
			n = re.Min + 1
		}
		sub := estimate(re.Sub[0], limit)
		if n > 0 && sub > limit/n {
			return limit + 1
		}
		return capped(sub*n + n + 1)
	case syntax.OpConcat, syntax.OpAlternate:
		total := 1
		for _, s := range re.Sub {
			total = capped(total + estimate(s, limit) + 1)
		}
		return total
	}
	return 2
}

// short cuts a long value for an error message.
func short(s string) string {
	const n = 64
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

package kubectlsluice

import "fmt"

// Exit codes of `kubectl sluice status`, for CI pipelines. Any other error exits 1.
const (
	ExitPromoted   = 0
	ExitOtherError = 1
	ExitRolledBack = 2 // the analysis rolled the canary back (AnalysisFailed, AnalysisErrors)
	ExitAborted    = 3 // a user aborted the run (AbortedByUser)
	ExitFailed     = 4 // the Rollout cannot run: InvalidSpec, TargetNotFound
	ExitTimeout    = 5 // --timeout passed first
)

// ExitError is an error that asks main for a particular exit code.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string { return e.Err.Error() }
func (e *ExitError) Unwrap() error { return e.Err }

func exitf(code int, format string, args ...any) error {
	return &ExitError{Code: code, Err: fmt.Errorf(format, args...)}
}

// Package rollout is the Rollout engine: Step, a pure function from what the reconciler observed
// (the Rollout's spec, the engine State kept in its status, the two Deployments, the weight the
// proxies apply, the analysis checks and the users' requests) to a Decision (the next State, the
// Actions to carry out and when to call again).
//
// The engine reads no clock, starts no goroutine and calls no API: the same Input always gives the
// same Decision. The reconciler gathers the Input, runs the analysis queries when State.AnalysisDue
// says so, calls Step, carries out the Actions, copies the State into the Rollout's status and
// requeues after Decision.RequeueAfter. docs/rollout-engine.md describes the state machine.
package rollout

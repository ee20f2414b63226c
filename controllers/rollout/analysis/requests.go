package analysis

import (
	"context"
	"math"

	"github.com/sluice-mesh/sluice/internal/promquery"
)

// requests returns how many calls the canary completed in the interval (RequestCountQuery), or nil
// when that is unknown: the query could not be built or failed, or gave NaN.
//
// No data counts as 0, not as unknown. The count has no series when no call reached a canary pod
// in the interval (a new canary, a weight just raised from 0), and the engine should wait for
// traffic (TooFewRequests) rather than count an error towards aborting the run. A scrape
// configuration that never labels the canary also reads as 0 requests, but then every built-in
// metric has no data too, and the run waits the same way with the reason in its status.
func (q querier) requests(ctx context.Context) *int64 {
	query, err := promquery.Render(RequestCountQuery, q.vars)
	if err != nil || q.address == "" {
		return nil
	}
	answer, err := promquery.Query(ctx, q.address, query, q.at)
	var n int64
	switch {
	case err != nil:
		return nil
	case answer.Kind == promquery.KindNoData:
	case answer.Kind == promquery.KindValue && answer.Value >= 0:
		// increase() extrapolates to the window's edges, so the count is rarely whole.
		n = int64(math.Round(answer.Value))
	default:
		return nil
	}
	return &n
}

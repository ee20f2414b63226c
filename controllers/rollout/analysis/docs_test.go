package analysis_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-mesh/sluice/controllers/rollout/analysis"
	"github.com/sluice-mesh/sluice/internal/promquery"
	"github.com/sluice-mesh/sluice/internal/repo"
)

// docs/data-plane-metrics.md shows each template rendered; keep it true.
func TestDocsShowRenderedTemplates(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join(repo.Root(), "docs", "data-plane-metrics.md"))
	if err != nil {
		t.Fatal(err)
	}
	v := promquery.Vars{Namespace: "shop", CanaryRevision: "7d9f8c5b6d", Interval: "1m"}
	for name, tmpl := range map[string]string{
		"request-success-rate": analysis.SuccessRateQuery,
		"request-duration":     analysis.DurationQuery,
		"request count":        analysis.RequestCountQuery,
	} {
		q, err := promquery.Render(tmpl, v)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !strings.Contains(string(doc), "```promql\n"+q+"\n```") {
			t.Errorf("docs/data-plane-metrics.md does not show %s as it renders:\n%s", name, q)
		}
	}
}

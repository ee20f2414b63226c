package main

import (
	"fmt"
	"slices"

	"github.com/operator-framework/api/pkg/manifests"
	"github.com/operator-framework/api/pkg/validation"
	"github.com/operator-framework/api/pkg/validation/errors"
)

// validators are what `make bundle-validate` runs: the default bundle validators (CSV, CRDs,
// bundle) and the OperatorHub suite with its companions.
var validators = validation.DefaultBundleValidators.WithValidators(
	validation.OperatorHubV2Validator,
	validation.StandardCapabilitiesValidator,
	validation.StandardCategoriesValidator,
	validation.ObjectValidator,
	validation.GoodPracticesValidator,
	validation.AlphaDeprecatedAPIsValidator,
)

// Report is what the validators found.
type Report struct {
	Errors, Warnings []string
}

// Clean is true when nothing was found.
func (r Report) Clean() bool { return len(r.Errors) == 0 && len(r.Warnings) == 0 }

// Validate loads the bundle in dir (manifests/ and metadata/) and runs the validators.
func Validate(dir string) (Report, error) {
	bundle, err := manifests.GetBundleFromDir(dir)
	if err != nil {
		return Report{}, fmt.Errorf("loading the bundle in %s: %w", dir, err)
	}
	objs := bundle.ObjectsToValidate()
	var report Report
	for _, result := range validators.Validate(objs...) {
		report.add(result)
	}
	slices.Sort(report.Errors)
	slices.Sort(report.Warnings)
	return report, nil
}

func (r *Report) add(result errors.ManifestResult) {
	for _, e := range result.Errors {
		r.Errors = append(r.Errors, describe(result, e))
	}
	for _, w := range result.Warnings {
		r.Warnings = append(r.Warnings, describe(result, w))
	}
}

func describe(result errors.ManifestResult, e errors.Error) string {
	return fmt.Sprintf("%s: %s", result.Name, e.Error())
}

#!/usr/bin/env bash
# Prints the directory of the prometheus-operator's CRDs (ServiceMonitor, PodMonitor, ...), which
# test/install installs into the test API server to check config/default's ServiceMonitor. They
# come from the operator's Go module (its example/prometheus-operator-crd, plain YAML), fetched
# once into the Go module cache; the module is not built or imported.
set -euo pipefail

version=v0.85.0
dir=$(go mod download -json "github.com/prometheus-operator/prometheus-operator@$version" |
  sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
crds="$dir/example/prometheus-operator-crd"
if [[ ! -f "$crds/monitoring.coreos.com_servicemonitors.yaml" ]]; then
  echo "prometheus-operator-crds: no CRDs in $crds" >&2
  exit 1
fi
echo "$crds"

#!/usr/bin/env bash
# Builds cert-manager's controllers, which tests run against the test API server
# (internal/testcertmanager), from cert-manager's Go module, pinned in hack/cert-manager/go.mod,
# because release images and binaries are out of reach here. cert-manager's own command is not in
# the module, so hack/cert-manager/main.go runs its controllers (see there). The binary and the
# module's CRDs (deploy/crds, plain YAML) are cached outside the repo, keyed by version and by a
# hash of the wrapper module's files, and that directory is the only thing printed on stdout (use
# it as CERT_MANAGER_DIR): cert-manager-controller and crds/*.yaml.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
module_version=$(awk '$1 == "require" && $2 == "github.com/cert-manager/cert-manager" {print $3}' "$here/cert-manager/go.mod")
# main.go is ours, not cert-manager's: a change to it (another controller, a flag) must not find
# the binary of the old one.
source_hash=$(cat "$here/cert-manager/go.mod" "$here/cert-manager/go.sum" "$here/cert-manager/main.go" | sha256sum | cut -c1-10)
cache=${SLUICE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sluice}
dir="$cache/cert-manager/$module_version-$source_hash"

if [[ -f "$dir/.complete" ]]; then
  echo "$dir"
  exit 0
fi

log() { echo "cert-manager: $*" >&2; }

# Test packages run in parallel and each may call this script: let one build, the others wait.
mkdir -p "$cache/cert-manager"
if command -v flock >/dev/null; then
  exec 9>"$dir.lock"
  flock 9
  if [[ -f "$dir/.complete" ]]; then
    echo "$dir"
    exit 0
  fi
fi

mkdir -p "$dir"
tmp=$(mktemp -d "$dir.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

ldflags="-s -w -X github.com/cert-manager/cert-manager/pkg/util.AppVersion=$module_version"

log "building cert-manager $module_version's controllers into $dir (a cold build takes a few minutes)"
(cd "$here/cert-manager" && go build -trimpath -ldflags "$ldflags" -o "$tmp/cert-manager-controller" .) >&2

# The CRDs of this version: deploy/crds holds controller-gen's output as plain YAML (the Helm
# chart's templates/crd-*.yaml are the same specs wrapped in template lines and labels).
module_dir=$(cd "$here/cert-manager" && go list -m -f '{{.Dir}}' github.com/cert-manager/cert-manager)
mkdir -p "$tmp/crds"
cp "$module_dir"/deploy/crds/*cert-manager.io_*.yaml "$tmp/crds/"
chmod -R u+w "$tmp/crds"

rm -rf "$dir/crds" # left by an interrupted run
mv "$tmp/cert-manager-controller" "$tmp/crds" "$dir/"
touch "$dir/.complete"
log "done"
echo "$dir"

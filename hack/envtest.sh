#!/usr/bin/env bash
# Builds the control-plane binaries envtest runs (kube-apiserver, kube-controller-manager,
# kube-scheduler, kubectl, etcd) from their Go modules, because setup-envtest's download hosts are
# out of reach here. The result is cached outside the repo, keyed by version, and its directory is
# the only thing printed on stdout (use it as KUBEBUILDER_ASSETS).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
kube_version=$(awk '$1 == "require" && $2 == "k8s.io/kubernetes" {print $3}' "$here/envtest/kube/go.mod")
etcd_version=$(awk '$1 == "require" && $2 == "go.etcd.io/etcd/server/v3" {print $3}' "$here/envtest/etcd/go.mod")
cache=${SLUICE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sluice}
dir="$cache/envtest/kube-${kube_version}_etcd-${etcd_version}"

if [[ -f "$dir/.complete" ]]; then
  echo "$dir"
  exit 0
fi

log() { echo "envtest: $*" >&2; }
mkdir -p "$dir"
tmp=$(mktemp -d "$dir.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

minor=${kube_version#v1.}; minor=${minor%%.*}
version_pkg=k8s.io/component-base/version
ldflags="-s -w -X $version_pkg.gitVersion=$kube_version -X $version_pkg.gitMajor=1 -X $version_pkg.gitMinor=$minor"
ldflags+=" -X k8s.io/client-go/pkg/version.gitVersion=$kube_version -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$minor"

log "building Kubernetes $kube_version binaries into $dir (a cold build takes several minutes)"
for cmd in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
  log "  $cmd"
  (cd "$here/envtest/kube" && go build -trimpath -ldflags "$ldflags" -o "$tmp/$cmd" "k8s.io/kubernetes/cmd/$cmd")
done
log "  etcd $etcd_version"
(cd "$here/envtest/etcd" && go build -trimpath -ldflags "-s -w" -o "$tmp/etcd" go.etcd.io/etcd/server/v3)

mv "$tmp"/* "$dir/"
touch "$dir/.complete"
log "done"
echo "$dir"

#!/usr/bin/env bash
# Builds kwok, which fakes a node and the status of the pods on it for tests (internal/testcluster),
# from its Go module, pinned in hack/kwok/go.mod, because release binaries are out of reach here.
# The binary is cached outside the repo, keyed by version, and its path is the only thing printed
# on stdout (use it as KWOK_BINARY).
#
# kwok does nothing without Stage configurations. internal/testcluster embeds the ones it uses,
# copied from the module's kustomize/stage directory; after a build this script says on stderr when
# the module's copies differ from those (after a version bump: review and copy them again).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
module_version=$(awk '$1 == "require" && $2 == "sigs.k8s.io/kwok" {print $3}' "$here/kwok/go.mod")
cache=${SLUICE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sluice}
dir="$cache/kwok/$module_version"

if [[ -f "$dir/.complete" ]]; then
  echo "$dir/kwok"
  exit 0
fi

log() { echo "kwok: $*" >&2; }

# Test packages run in parallel and each may call this script: let one build, the others wait.
mkdir -p "$cache/kwok"
if command -v flock >/dev/null; then
  exec 9>"$dir.lock"
  flock 9
  if [[ -f "$dir/.complete" ]]; then
    echo "$dir/kwok"
    exit 0
  fi
fi

mkdir -p "$dir"
tmp=$(mktemp -d "$dir.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

log "building kwok $module_version into $dir (a cold build takes about two minutes)"
(cd "$here/kwok" && go build -trimpath -ldflags "-s -w" -o "$tmp/kwok" sigs.k8s.io/kwok/cmd/kwok) >&2

# Keep the stage configurations of this version beside the binary, for reference and for running
# kwok by hand (kwok --config "$dir"/stages/pod-ready.yaml ...).
module_dir=$(cd "$here/kwok" && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)
mkdir -p "$tmp/stages"
for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
  pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
  cp "$module_dir/kustomize/stage/$f" "$tmp/stages/"
done
chmod -R u+w "$tmp/stages"

# internal/testcluster/stages holds copies (pod-ready.yaml changed for its readiness gate, the
# others verbatim); say so when the module's differ.
embedded="$here/../internal/testcluster/stages"
if [[ -d "$embedded" ]]; then
  for f in node-initialize.yaml pod-complete.yaml pod-delete.yaml; do
    if ! diff -q <(grep -v '^#' "$embedded/$f") "$tmp/stages/$f" >/dev/null 2>&1; then
      log "warning: internal/testcluster/stages/$f differs from kwok $module_version's; compare with $dir/stages/$f"
    fi
  done
fi

mv "$tmp/kwok" "$tmp/stages" "$dir/"
touch "$dir/.complete"
log "done"
echo "$dir/kwok"

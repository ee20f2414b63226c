#!/usr/bin/env bash
# Builds the Prometheus server that tests run (internal/testprom) from its Go module, pinned in
# hack/prometheus/go.mod, because release tarballs are out of reach here. The binary is cached
# outside the repo, keyed by version, and its path is the only thing printed on stdout (use it as
# PROMETHEUS_BINARY).
#
# It is built without the web UI's assets (the HTTP API is all tests need) and with the
# remove_all_sd tag, which leaves only static and file service discovery (tests use
# static_configs); that cuts the build to about a third of the CPU time. When the build fails,
# Debian's prometheus package is installed instead (needs root) and that binary is used; set
# SLUICE_PROMETHEUS_NO_APT=1 to fail instead.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
module_version=$(awk '$1 == "require" && $2 == "github.com/prometheus/prometheus" {print $3}' "$here/prometheus/go.mod")
cache=${SLUICE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sluice}
dir="$cache/prometheus/$module_version"

if [[ -f "$dir/.complete" ]]; then
  echo "$dir/prometheus"
  exit 0
fi

log() { echo "prometheus: $*" >&2; }

# Test packages run in parallel and each may call this script: let one build, the others wait.
mkdir -p "$cache/prometheus"
if command -v flock >/dev/null; then
  exec 9>"$dir.lock"
  flock 9
  if [[ -f "$dir/.complete" ]]; then
    echo "$dir/prometheus"
    exit 0
  fi
fi

# Module v0.X.Y is Prometheus 3.(X-300).Y (v0.316.0 is 3.16.0); older v0.Y.Z lines are 2.Y.Z.
release=${module_version#v0.}
minor=${release%%.*}
patch=${release#*.}
if ((minor >= 300)); then
  release="3.$((minor - 300)).$patch"
else
  release="2.$release"
fi

apt_fallback() {
  if [[ -n "${SLUICE_PROMETHEUS_NO_APT:-}" ]]; then
    log "building from source failed and SLUICE_PROMETHEUS_NO_APT is set"
    exit 1
  fi
  log "building from source failed; installing Debian's prometheus package instead"
  if [[ ! -x /usr/bin/prometheus ]]; then
    local sudo=()
    [[ $(id -u) -eq 0 ]] || sudo=(sudo)
    "${sudo[@]}" apt-get update -qq >&2
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >&2
    # The package may start a system-wide Prometheus on :9090 (unless policy-rc.d forbids it);
    # tests run their own, so stop it.
    if [[ -d /run/systemd/system ]]; then
      "${sudo[@]}" systemctl disable --now prometheus >/dev/null 2>&1 || true
    elif [[ -x /etc/init.d/prometheus ]]; then
      "${sudo[@]}" /etc/init.d/prometheus stop >/dev/null 2>&1 || true
    fi
  fi
  /usr/bin/prometheus --version >&2
  # Remember the choice, so that the next run is instant; remove $dir to try the build again.
  ln -sfn /usr/bin/prometheus "$dir/prometheus"
  touch "$dir/.complete"
  log "using Debian's /usr/bin/prometheus (remove $dir to try building again)"
  echo "$dir/prometheus"
  exit 0
}

mkdir -p "$dir"
tmp=$(mktemp -d "$dir.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

version_pkg=github.com/prometheus/common/version
ldflags="-s -w -X $version_pkg.Version=$release -X $version_pkg.Revision=$module_version -X $version_pkg.Branch=module"

log "building Prometheus $release ($module_version) into $dir (a cold build takes a few minutes)"
if ! (cd "$here/prometheus" && go build -trimpath -tags netgo,remove_all_sd -ldflags "$ldflags" \
  -o "$tmp/prometheus" github.com/prometheus/prometheus/cmd/prometheus) >&2; then
  apt_fallback
fi

mv "$tmp/prometheus" "$dir/prometheus"
touch "$dir/.complete"
log "done"
echo "$dir/prometheus"

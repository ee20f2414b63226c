#!/usr/bin/env bash
# Fails when git tracks a build output: an executable binary (ELF) or any file over 1 MiB.
# A committed binary once made a whole submission too large to land.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
limit=$((1024 * 1024))
bad=0
while IFS= read -r -d '' f; do
  [[ -f "$f" ]] || continue
  size=$(stat -c %s "$f")
  if (( size > limit )); then
    echo "tracked file over 1 MiB: $f ($size bytes); build outputs and data stay out of git" >&2
    bad=1
  elif [[ "$(head -c 4 "$f" | od -An -tx1 | tr -d ' ')" == "7f454c46" ]]; then
    echo "tracked executable binary: $f; add it to .gitignore and git rm --cached it" >&2
    bad=1
  fi
done < <(git ls-files -z)
exit "$bad"

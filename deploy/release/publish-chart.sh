#!/usr/bin/env bash
# Packages deploy/chart/kaas at the project's version and pushes it as an OCI artifact:
#   publish-chart.sh oci://ghcr.io/scs-kaas/charts [helm flags such as --plain-http]
# The release workflow (deploy/release/github-workflow.yaml) runs it on a tag;
# e2e/tests/chart.rs runs it against a real registry and installs from there.
set -euo pipefail
repository=${1:?usage: publish-chart.sh oci://REGISTRY/PATH [helm push flags]}
shift
here=$(cd "$(dirname "$0")/../.." && pwd)
helm=${HELM:-helm}
version=$(awk -F'"' '/^version = / { print $2; exit }' "$here/Cargo.toml")
chart_version=$(awk '/^version:/ { print $2; exit }' "$here/deploy/chart/kaas/Chart.yaml")
if [ "$version" != "$chart_version" ]; then
  echo "deploy/chart/kaas/Chart.yaml has version $chart_version, the workspace $version" >&2
  exit 1
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
"$helm" lint --strict "$here/deploy/chart/kaas" --namespace kaas-system >&2
"$helm" package "$here/deploy/chart/kaas" --destination "$out" >&2
"$helm" push "$out/kaas-$version.tgz" "$repository" "$@"

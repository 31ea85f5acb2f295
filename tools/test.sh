#!/usr/bin/env bash
# Installs what the tests need, runs every test, and prints "N passed, N failed" as its last line.
#   Needs: the .NET 10 SDK. Installs (if missing): Debian's zookeeper, prometheus, nodejs, Go (with Sprig and
#   sigs.k8s.io/yaml) and yamllint packages, then the interop npm packages.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# Debian packages: ZooKeeper (a real server for the coordination tests), Prometheus (a real server scraping /metrics,
# and promtool), Node.js (grpc-js, xxHash's reference implementation, the chart's schema validator), and Go with the
# sources of Sprig and sigs.k8s.io/yaml (the chart renderer, tests/chart/render) and yamllint when missing.
packages=""
[ -f /usr/share/java/zookeeper.jar ] || packages="$packages zookeeper"
[ -x /usr/bin/prometheus ] && [ -x /usr/bin/promtool ] || packages="$packages prometheus"
command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || packages="$packages nodejs npm"
command -v go >/dev/null 2>&1 || packages="$packages golang-go"
[ -d /usr/share/gocode/src/github.com/Masterminds/sprig ] || packages="$packages golang-github-masterminds-sprig-dev"
[ -d /usr/share/gocode/src/sigs.k8s.io/yaml ] || packages="$packages golang-k8s-sigs-yaml-dev"
command -v yamllint >/dev/null 2>&1 || packages="$packages yamllint"
if [ -n "$packages" ]; then
  echo "== Installing Debian packages:$packages"
  as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $packages >/dev/null \
    || { echo "could not install:$packages"; echo "0 passed, 1 failed"; exit 1; }
fi
echo "== Installing test packages (npm ci in tests/interop)"
npm ci --prefix tests/interop --no-audit --no-fund --loglevel=error || { echo "npm ci failed"; echo "0 passed, 1 failed"; exit 1; }

results="$root/artifacts/test-results"
rm -rf "$results"
mkdir -p "$results"
echo "== Building"
dotnet build Streams.sln --nologo -v quiet -clp:ErrorsOnly
status=$?
if [ "$status" -eq 0 ]; then
  # Long runs (category Long, e.g. the rotating-fault run) stay out of the suite unless a filter is given.
  filter=()
  if [ "$#" -eq 0 ]; then
    filter=(--filter "Category!=Long")
  fi
  # A test that hangs is ended, and named in the log, after 10 minutes rather than holding the whole run.
  for project in tests/*/*.Tests.csproj; do
    name=$(basename "$project" .csproj)
    echo "== $name"
    dotnet test "$project" --no-build --nologo --logger "trx;LogFileName=$name.trx" --logger "console;verbosity=minimal" --results-directory "$results" \
      --blame-hang-timeout 10m --blame-hang-dump-type none "${filter[@]}" "$@" || status=1
  done
fi

# Sum the counters of every test run (the VSTest summary is per assembly).
passed=0
failed=0
for trx in "$results"/*.trx; do
  [ -f "$trx" ] || continue
  counters=$(grep -o '<Counters [^>]*>' "$trx" | head -n 1)
  p=$(echo "$counters" | sed -n 's/.* passed="\([0-9]*\)".*/\1/p')
  f=$(echo "$counters" | sed -n 's/.* failed="\([0-9]*\)".*/\1/p')
  passed=$((passed + ${p:-0}))
  failed=$((failed + ${f:-0}))
done
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then
  # The build or a test host failed without a failed test to show for it.
  failed=1
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]

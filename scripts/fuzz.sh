#!/usr/bin/env bash
# Runs every fuzz target of the module for $FUZZTIME each (default 100000x:
# a count of executions, a few seconds to half a minute per target here).
# go test -fuzz takes one target of one package at a time, so list them.
#
# Why a count and not a duration: with a duration (-fuzztime 10s) Go 1.26's
# fuzz coordinator can report the end of its own deadline as a failure
# ("context deadline exceeded", no crasher written) when a worker is
# mid-input as the time runs out (go.dev/issue/75804, fixed in Go 1.27).
# CI hit exactly that. A count stops the workers without that deadline.
# A duration still works (FUZZTIME=30s) for local exploration.
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZTIME=${FUZZTIME:-100000x}
status=0
while read -r file; do
  pkg="./$(dirname "$file")"
  for target in $(grep -ohE '^func (Fuzz[A-Za-z0-9_]+)\(' "$file" | sed -E 's/^func (Fuzz[A-Za-z0-9_]+)\(/\1/'); do
    echo "fuzz: $pkg $target ($FUZZTIME)"
    # From the package's directory, so a target of the loadtest module runs too.
    if ! (cd "$pkg" && go test -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" .); then
      status=1
    fi
  done
done < <(git ls-files '*_test.go' | xargs grep -l '^func Fuzz' | sort)
exit $status

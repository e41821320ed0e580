#!/usr/bin/env bash
# The fault suite in full: every scenario as many times as TESTING.md's
# table says (about an hour on 2 cores).  The README's test command runs
# each scenario once.
#   test/fault/run.sh [scenario files...]
# Results: /tmp/flusso-check/fault/fault-results.jsonl, summarized at the end.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
FLUSSO_FAULT_MODE=full exec "$root/test/check.sh" --only fault "$@"

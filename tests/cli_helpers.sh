# Helpers of the command-line tests (sourced): a temporary folder $T removed
# on exit, ok/bad counting failures in $fails, and the two expectations.
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fails=0
ok() { echo "ok: $1"; }
bad() { echo "FAILED: $1"; fails=$((fails + 1)); }

# expect_error NEEDLE CMD... : CMD must fail and stderr must contain NEEDLE.
expect_error() {
  local needle=$1; shift
  if "$@" >"$T/out" 2>"$T/err"; then bad "'$*' succeeded"; return; fi
  if grep -qF -- "$needle" "$T/err"; then ok "'$*' fails naming '$needle'"; else bad "'$*' error lacks '$needle': $(cat "$T/err")"; fi
}
# expect_ok CMD... : CMD must succeed.
expect_ok() {
  if "$@" >"$T/out" 2>"$T/err"; then ok "$*"; else bad "'$*' failed: $(cat "$T/err")"; fi
}

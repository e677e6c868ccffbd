# Sourced by the shell tests: a temporary directory $T, removed at exit;
# check DESCRIPTION COMMAND... prints "ok" or "FAIL" and counts failures in
# $fails (end a test with `[ $fails = 0 ]`); status COMMAND... prints its
# exit status, with its stdout in $T/out and its stderr in $T/err.
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fails=0
check() {
    desc=$1; shift
    if "$@"; then echo "ok   $desc"; else echo "FAIL $desc"; fails=$((fails + 1)); fi
}
status() { "$@" >"$T/out" 2>"$T/err"; echo $?; }

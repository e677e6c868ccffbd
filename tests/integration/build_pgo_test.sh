#!/bin/sh
# tools/build-pgo.sh as a user meets it when something goes wrong: each
# failure ends the script with a non-zero status and says why on stderr
# (meson and ninja report on stdout, which the script keeps quiet).  The
# full build and training run in CI (.ci/run), not here: they take minutes.
set -eu
S="$PIXEL_SOURCE_DIR/tools/build-pgo.sh"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

# Wrong use: the usage, status 2, before anything is built.
for args in "" "-c x.yaml" "$T/b -c" "$T/b -c $T/none.yaml" "$T/b $T/none.log"; do
    # shellcheck disable=SC2086
    if sh "$S" $args >"$T/out" 2>"$T/err"; then fail "build-pgo.sh $args succeeded"; fi
    [ -s "$T/err" ] || fail "build-pgo.sh $args: nothing on stderr"
    [ ! -e "$T/b" ] || fail "build-pgo.sh $args: made a build directory"
done
echo "ok   wrong use is refused before building"

# A build directory that cannot be made: meson's reason reaches stderr.
touch "$T/file"
if sh "$S" "$T/file" >"$T/out" 2>"$T/err"; then fail "a file as BUILD_DIR succeeded"; fi
grep -q "not a directory" "$T/err" || { cat "$T/out" "$T/err"; fail "no reason given for a file as BUILD_DIR"; }
echo "ok   an unusable BUILD_DIR: $(grep -m1 'not a directory' "$T/err")"

# A compile error (here: a broken PIXEL_API macro): the compiler's message
# reaches stderr, not only a status.
if CFLAGS="-DPIXEL_API=@" sh "$S" "$T/broken" >"$T/out" 2>"$T/err"; then
    fail "a build that cannot compile succeeded"
fi
grep -q "error:" "$T/err" || { cat "$T/out" "$T/err"; fail "the compile error is not shown"; }
grep -q "build-pgo: failed" "$T/err" || fail "the failing step is not named"
echo "ok   a compile error is shown: $(grep -m1 "error:" "$T/err")"

# With a profile, -O3 warns where the training's paths lead it (a false
# "may be used uninitialized" in referer.c after training on 3,000 lines of
# the seed-1 corpus): the warnings differ with each user's logs, so they
# must not stop the build.  The compile commands of a b_pgo=use build end
# with -Wno-error (the plain release build in CI still fails on warnings).
meson setup "$T/use" "$PIXEL_SOURCE_DIR" -Dbuildtype=release -Db_pgo=use >"$T/out" 2>&1 || {
    cat "$T/out"; fail "meson setup -Db_pgo=use"; }
python3 - "$T/use/compile_commands.json" <<'PY' || fail "a b_pgo=use build turns warnings into errors"
import json, sys
cmds = json.load(open(sys.argv[1]))
bad = []
for c in cmds:
    args = c["command"].split()
    last = [a for a in args if a in ("-Werror", "-Wno-error")]
    if last and last[-1] == "-Werror":
        bad.append(c["file"])
if bad:
    print("-Werror last for %d of %d files, e.g. %s" % (len(bad), len(cmds), bad[0]))
    sys.exit(1)
PY
echo "ok   warnings are not errors in a profile-guided build"

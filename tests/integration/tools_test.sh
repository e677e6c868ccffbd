#!/bin/sh
# Every tool answers --help (stdout, status 0), --version (its name and the
# library's version, status 0) and an unknown option (a usage error, 2).
. "$(dirname "$0")/checks.sh"
B=$PIXEL_BUILD_DIR
version=$(sed -n "s/^ *version: '\([^']*\)'.*/\1/p" "$PIXEL_SOURCE_DIR/meson.build" | head -n 1)
check "the project's version is known" [ -n "$version" ]
for t in pixelconv pixel-validate pixel-omprog pixel-mmexternal pixel-queue-trim \
         pixel-spool pixel-replay pixel-mock-kafka; do
    exe=$B/tools/$t/$t
    if [ ! -x "$exe" ]; then
        # Only the Kafka tools are optional (a build without librdkafka).
        case $t in
            pixel-spool|pixel-replay|pixel-mock-kafka) echo "--   $t: not built (no librdkafka)"; continue ;;
        esac
    fi
    check "$t --help exits 0" [ "$(status "$exe" --help)" = 0 ]
    check "... with its usage on stdout and --version in it" \
        sh -c "grep -qi '^usage: $t' '$T/out' && grep -q -- '--version' '$T/out' && [ ! -s '$T/err' ]"
    check "$t --version exits 0" [ "$(status "$exe" --version)" = 0 ]
    check "... printing '$t (libpixel) $version'" \
        sh -c "[ \"\$(cat '$T/out')\" = '$t (libpixel) $version' ]"
    check "$t --no-such-option is a usage error (2)" [ "$(status "$exe" --no-such-option)" = 2 ]
    check "... said on stderr" [ -s "$T/err" ]
done
[ "$fails" = 0 ]

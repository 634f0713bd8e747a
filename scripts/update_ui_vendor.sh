#!/usr/bin/env bash
# The UI's third-party JavaScript, vendored unmodified under src/veloz/ui/vendor/ and
# pinned by its manifest.json: package, version, the registry tarball's integrity, and
# the sha256 of every file taken from it (the licence file among them).
#
#   scripts/update_ui_vendor.sh          fetch exactly the manifest's versions from the npm
#                                        registry, check the tarball's integrity and each
#                                        file's sha256, then replace the vendored files
#   scripts/update_ui_vendor.sh --check  check the files on disk against the manifest
#                                        (offline; what CI runs)
#
# Nothing is written unless every file of every package checks out. To move to another
# version, change "version" and "integrity" (`npm view PACKAGE@VERSION dist.integrity`) and
# each "sha256" after reviewing the new files: a hash is a decision, not a side effect.
set -euo pipefail
cd "$(dirname "$0")/.."

VENDOR=src/veloz/ui/vendor
MANIFEST="$VENDOR/manifest.json"

die() {
    echo "update_ui_vendor: $*" >&2
    exit 1
}

command -v jq >/dev/null || die "jq is required (apt-get install jq)"
[[ -f "$MANIFEST" ]] || die "no manifest at $MANIFEST"

sha256() {
    sha256sum "$1" | cut -d' ' -f1
}

# Each vendored file as "package<TAB>version<TAB>from<TAB>file<TAB>sha256".
entries() {
    jq -r '.packages[] | . as $p | .files[]
        | [$p.package, $p.version, .from, .file, .sha256] | @tsv' "$MANIFEST"
}

check() {
    local failed=0 package version from file expected actual
    while IFS=$'\t' read -r package version from file expected; do
        if [[ ! -f "$VENDOR/$file" ]]; then
            echo "missing: $VENDOR/$file ($package@$version $from)" >&2
            failed=1
            continue
        fi
        actual=$(sha256 "$VENDOR/$file")
        if [[ "$actual" != "$expected" ]]; then
            echo "changed: $VENDOR/$file has sha256 $actual, the manifest says $expected" >&2
            failed=1
        fi
    done < <(entries)
    [[ $failed -eq 0 ]] || die "the vendored files differ from $MANIFEST"
    echo "vendored files match $MANIFEST"
}

fetch() {
    command -v curl >/dev/null || die "curl is required"
    local registry package version integrity tarball url actual from file expected
    registry=$(jq -r '.registry' "$MANIFEST")
    WORK=$(mktemp -d)
    trap 'rm -rf "$WORK"' EXIT
    local work=$WORK
    while IFS=$'\t' read -r package version integrity; do
        tarball="${package##*/}-$version.tgz"  # @scope/name's tarball is name-VERSION.tgz
        url="$registry/$package/-/$tarball"
        echo "fetching $url" >&2
        mkdir -p "$work/$package"
        curl --fail --silent --show-error --location --output "$work/$package.tgz" "$url"
        actual="sha512-$(openssl dgst -sha512 -binary "$work/$package.tgz" | base64 -w0)"
        [[ "$actual" == "$integrity" ]] \
            || die "$package@$version: the tarball's integrity is $actual, the manifest says $integrity"
        tar -xzf "$work/$package.tgz" -C "$work/$package"
    done < <(jq -r '.packages[] | [.package, .version, .integrity] | @tsv' "$MANIFEST")
    while IFS=$'\t' read -r package version from file expected; do
        [[ -f "$work/$package/$from" ]] || die "$package@$version has no $from"
        actual=$(sha256 "$work/$package/$from")
        [[ "$actual" == "$expected" ]] \
            || die "$package@$version $from has sha256 $actual, the manifest says $expected"
    done < <(entries)
    while IFS=$'\t' read -r package version from file expected; do
        cp "$work/$package/$from" "$VENDOR/$file"
        echo "$VENDOR/$file <- $package@$version $from" >&2
    done < <(entries)
    check
}

case "${1:-}" in
    --check) check ;;
    "") fetch ;;
    *) die "usage: $0 [--check]" ;;
esac

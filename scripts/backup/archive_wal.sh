#!/usr/bin/env bash
# archive_wal.sh PATH NAME DIR: PostgreSQL's archive_command for VeloZ's PITR backups.
#
# In postgresql.conf (the server runs it as its own OS user, from its data directory):
#   archive_command = '/opt/veloz/scripts/backup/archive_wal.sh %p %f /backup/postgres/wal_archive'
#
# Copies the WAL file PATH (%p) to DIR/NAME (%f) through a temporary file, flushed to disk
# before it takes its name, so the archive never holds a torn segment. A file already in
# the archive with the same content counts as archived (PostgreSQL may retry after a
# crash); a different one is an error, never overwritten. DIR must exist and be writable
# by the server's OS user (install -d -o postgres -g postgres -m 700 DIR).
# Equivalent without this script (no flush, no retry check):
#   archive_command = 'test ! -f /backup/postgres/wal_archive/%f && cp %p /backup/postgres/wal_archive/%f'
#
# Exit codes: 0 archived (PostgreSQL may recycle the segment); 1 not archived (PostgreSQL
# keeps the segment and retries; the reason is in the server log); 2 bad usage.
set -euo pipefail
# shellcheck source=scripts/backup/lib.sh
source "$(dirname "$0")/lib.sh"

case ${1:-} in -h | --help) print_help; exit 0 ;; esac
[ $# -eq 3 ] || die $EXIT_USAGE "usage: archive_wal.sh %p %f DIR (see --help)"
source_file=$1 name=$2 dir=$3
case $name in */* | '' | .*) die $EXIT_USAGE "'$name' is not a WAL file name" ;; esac
[ -d "$dir" ] || die $EXIT_FAILED "archive directory $dir does not exist"
target=$dir/$name

if [ -e "$target" ]; then
    cmp -s -- "$source_file" "$target" && exit 0
    die $EXIT_FAILED "$target exists with different content: not overwritten"
fi
partial=$dir/.$name.partial.$$
trap 'rm -f -- "$partial"' EXIT
cp -- "$source_file" "$partial" || die $EXIT_FAILED "cannot copy $source_file to $dir"
sync -- "$partial" || die $EXIT_FAILED "cannot flush $partial"
mv -n -- "$partial" "$target" || die $EXIT_FAILED "cannot name $target"
[ ! -e "$partial" ] || die $EXIT_FAILED "$target appeared meanwhile: not overwritten"
sync -- "$dir" || die $EXIT_FAILED "cannot flush $dir"

#!/usr/bin/env bash
# restore_wal.sh: put a journal backup back in place of the engine's journal.
#
# Usage: restore_wal.sh [--help] [BACKUP]
#
# BACKUP is a journal backup directory (e.g. /backup/wal/20261129T031500Z) or its stamp;
# default: the newest complete one under $VELOZ_BACKUP_DIR/wal (one with MANIFEST.sha256).
# Steps: refuse while an engine holds the journal (its .lock, tested without waiting);
# check the backup's checksums; copy its segments into a new directory beside
# VELOZ_WAL_DIR and verify them with `veloz wal verify` (and the record count against
# snapshot.json); then, holding the journal's lock, move the current journal aside to
# VELOZ_WAL_DIR.replaced-<stamp> (never deleted) and the restored one into its place,
# with the old directory's owner and mode. Start the engine afterwards: it replays the
# restored journal. If the history store (VELOZ_DATABASE_URL) already projected entries
# past the restored journal's end, a WARNING line says to run `veloz db rebuild` first.
#
# Settings (environment, then VELOZ_ENV_FILE, default /etc/veloz/veloz.env):
#   VELOZ_WAL_DIR (/var/lib/veloz/wal), VELOZ_BACKUP_DIR (/backup), VELOZ_BIN.
#
# Exit codes: 0 restored; 1 a step failed (the last line names it); 2 bad usage, or no
# backup; 3 refused: an engine holds the journal (stop it first); 4 another
# restore_wal.sh is running; 5 the backup fails its checksums or verification.
set -euo pipefail
# shellcheck source=scripts/backup/lib.sh
source "$(dirname "$0")/lib.sh"

backup=""
while [ $# -gt 0 ]; do
    case $1 in
        -h | --help) print_help; exit 0 ;;
        -*) die $EXIT_USAGE "unknown option '$1' (see --help)" ;;
        *)
            [ -z "$backup" ] || die $EXIT_USAGE "one BACKUP at most (see --help)"
            backup=$1
            shift
            ;;
    esac
done
require_veloz
if [ -z "$backup" ]; then
    backup=$(newest_complete "$VELOZ_BACKUP_DIR/wal")
    [ -n "$backup" ] || die $EXIT_USAGE "no complete journal backup under $VELOZ_BACKUP_DIR/wal"
elif [ ! -d "$backup" ] && [ -d "$VELOZ_BACKUP_DIR/wal/$backup" ]; then
    backup=$VELOZ_BACKUP_DIR/wal/$backup
fi
[ -d "$backup" ] || die $EXIT_USAGE "no journal backup at $backup"
backup=$(cd "$backup" && pwd -P)
wal_dir=${VELOZ_WAL_DIR%/}
take_lock

# The engine's lock, tested and then held without waiting: an engine that runs keeps it.
engine_lock() {
    [ -d "$wal_dir" ] || return 0
    exec 8<>"$wal_dir/.lock" || die $EXIT_FAILED "cannot open $wal_dir/.lock"
    flock -n 8 || die $EXIT_REFUSED "an engine holds the journal $wal_dir (pid $(tr -d '[:space:]' <"$wal_dir/.lock" || true)): stop it first (systemctl stop veloz)"
}
engine_lock
log "restoring $backup into $wal_dir"

log "checking checksums"
[ -f "$backup/MANIFEST.sha256" ] || die $EXIT_VERIFY "$backup has no MANIFEST.sha256: an incomplete backup"
check_manifest "$backup" >&2 || die $EXIT_VERIFY "$backup fails its checksums"

stamp=$(backup_stamp)
staging=$wal_dir.restoring-$stamp
cleanup() { [ -z "$staging" ] || rm -rf -- "$staging"; }
trap cleanup EXIT
mkdir -p "$staging" || die $EXIT_FAILED "cannot create $staging"
for file in "$backup"/orders_*.wal; do
    [ -f "$file" ] || continue
    cp -- "$file" "$staging/" || die $EXIT_FAILED "cannot copy $file"
done

log "verifying the restored journal"
if ! verdict=$(veloz_cli wal verify --dir "$staging" 2>&1); then
    printf '%s\n' "$verdict" >&2
    die $EXIT_VERIFY "the backup's journal does not verify"
fi
log "veloz wal verify: $(printf '%s\n' "$verdict" | tail -n 1)"
stats=$(veloz_cli wal stats --dir "$staging" --json) || die $EXIT_FAILED "veloz wal stats failed"
restored=$(printf '%s\n' "$stats" | sed -n 's/^  "entries": \([0-9]*\),$/\1/p')
expected=$(sed -n 's/^  "records": \([0-9]*\),$/\1/p' "$backup/snapshot.json" 2>/dev/null || true)
if [ -n "$expected" ] && [ "$restored" != "$expected" ]; then
    die $EXIT_VERIFY "the restored journal holds $restored records, snapshot.json says $expected"
fi
last=$(printf '%s\n' "$stats" | sed -n 's/^  "last_sequence": \(.*\),$/\1/p')
log "$restored records, last sequence $last"

# The engine's user must own what it will write: as the journal directory was, or its parent.
reference=$wal_dir
[ -d "$reference" ] || reference=$(dirname "$wal_dir")
chown -R --reference="$reference" "$staging" 2>/dev/null || true
chmod --reference="$reference" "$staging"
if [ -d "$wal_dir" ]; then
    aside=$wal_dir.replaced-$stamp
    mv -- "$wal_dir" "$aside" || die $EXIT_FAILED "cannot move $wal_dir aside"
    log "current journal moved aside to $aside"
fi
mv -T -- "$staging" "$wal_dir" || die $EXIT_FAILED "cannot move the restored journal to $wal_dir"
staging=""

# A history store that projected entries after the backup would skip the sequence numbers
# the engine now hands out again: say so, with the command that puts it right.
case $VELOZ_DATABASE_URL in
    none | NONE | None) store_seq="" ;;
    sqlite:///*) [ -f "${VELOZ_DATABASE_URL#sqlite:///}" ] && store_seq=probe || store_seq="" ;;
    *) store_seq=probe ;;
esac
if [ -n "$store_seq" ]; then
    store_seq=$(veloz_cli db status --url "$VELOZ_DATABASE_URL" 2>/dev/null \
        | sed -n 's/^projected through journal sequence \([0-9][0-9]*\)$/\1/p' || true)
    if [ -n "$store_seq" ] && [ -n "$last" ] && [ "$store_seq" -gt "$last" ]; then
        log "WARNING: the history store $(redact_url "$VELOZ_DATABASE_URL") holds journal entries up to $store_seq, the restored journal ends at $last: before starting the engine run $VELOZ_BIN db rebuild --dir $wal_dir (or restore the store from a backup taken before this journal's)"
    fi
fi
log "done: $wal_dir holds $backup (sequences up to $last); start the engine (systemctl start veloz)"

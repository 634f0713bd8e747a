#!/usr/bin/env bash
# backup_wal.sh: a consistent copy of the engine's journal, taken while it runs.
#
# Usage: backup_wal.sh [--help]
#
# Writes $VELOZ_BACKUP_DIR/wal/<stamp>/ with `veloz wal snapshot` (completed segments as
# they are, the current one up to its last complete record, retried if a rotation races
# the copy, verified), snapshot.json (first/last sequence, newest checkpoint, files) and
# MANIFEST.sha256, written last. Completed segments identical to the previous snapshot's
# become hard links to it, so a snapshot every 5 minutes costs about one segment. Then
# wal/latest points at it, it goes to VELOZ_S3_BUCKET when that is set, and complete
# snapshots beyond the newest VELOZ_BACKUP_KEEP_WAL (default 288: a day at every 5
# minutes) are removed. The engine's lock is not taken: it keeps running.
#
# Settings (environment, then VELOZ_ENV_FILE, default /etc/veloz/veloz.env):
#   VELOZ_WAL_DIR (/var/lib/veloz/wal), VELOZ_BACKUP_DIR (/backup), VELOZ_BACKUP_KEEP_WAL,
#   VELOZ_S3_BUCKET (s3://bucket[/prefix], optional), VELOZ_S3_ENDPOINT_URL, AWS_*, VELOZ_BIN.
#
# Exit codes: 0 done; 1 a step failed (the last line names it); 2 bad usage or setting;
# 4 another backup_wal.sh is running.
set -euo pipefail
# shellcheck source=scripts/backup/lib.sh
source "$(dirname "$0")/lib.sh"
umask 077

only_help "$@"
keep=$(keep_count VELOZ_BACKUP_KEEP_WAL 288)
[ -d "$VELOZ_WAL_DIR" ] || die $EXIT_USAGE "no journal directory at $VELOZ_WAL_DIR (set VELOZ_WAL_DIR)"
require_veloz
take_lock

out=""
trap 'remove_incomplete_backup $?' EXIT

parent=$VELOZ_BACKUP_DIR/wal
previous=$(newest_complete "$parent")
out=$(new_backup_dir "$parent")

log "snapshot of $VELOZ_WAL_DIR into $out"
summary=$(veloz_cli wal snapshot --dir "$VELOZ_WAL_DIR" --out "$out") || die $EXIT_FAILED "veloz wal snapshot failed"
log "$summary"

if [ -n "$previous" ]; then
    linked=0
    for segment in "$out"/orders_[0-9]*.wal; do
        [ -f "$segment" ] || continue
        same=$previous/$(basename "$segment")
        if [ -f "$same" ] && cmp -s -- "$segment" "$same" && ln -f -- "$same" "$segment"; then
            linked=$((linked + 1))
        fi
    done
    log "$linked completed segments hard-linked to $(basename "$previous")"
fi

write_manifest "$out" || die $EXIT_FAILED "cannot write $out/MANIFEST.sha256"
ln -sfn "$(basename "$out")" "$parent/latest" || die $EXIT_FAILED "cannot point $parent/latest at $out"

upload_if_configured "$out" || die $EXIT_FAILED "upload of $out to $VELOZ_S3_BUCKET failed"
prune_backups "$parent" "$keep"
log "done: $out"
printf '%s\n' "$out"

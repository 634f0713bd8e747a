#!/usr/bin/env bash
# backup_all.sh: everything a restore needs, in the order that keeps it consistent.
#
# Usage: backup_all.sh [--help]
#
# 1. the history store: SQLite through its online backup API into
#    $VELOZ_BACKUP_DIR/history/<stamp>/ (veloz.db, info.json with rows per table and the
#    journal sequence the store holds, MANIFEST.sha256); PostgreSQL through
#    backup_postgres.sh -t full (postgres/full/<stamp>/); nothing for VELOZ_DATABASE_URL=none.
#    It goes first so that the journal backed up after it holds every entry it projected.
# 2. the journal: backup_wal.sh (wal/<stamp>/).
# 3. the configuration: backup_config.sh (config/<stamp>/).
# With VELOZ_S3_BUCKET set each new directory is uploaded (MANIFEST.sha256 last) to the
# same key under s3://bucket/prefix/. A step that fails does not stop the others; the exit
# code says that one failed. Complete history copies beyond the newest
# VELOZ_BACKUP_KEEP_HISTORY (default 14) are removed.
#
# Settings (environment, then VELOZ_ENV_FILE, default /etc/veloz/veloz.env):
#   VELOZ_DATABASE_URL, VELOZ_WAL_DIR, VELOZ_CONFIG_DIR, VELOZ_BACKUP_DIR (/backup),
#   VELOZ_BACKUP_KEEP_HISTORY, VELOZ_S3_BUCKET (optional), VELOZ_S3_ENDPOINT_URL, AWS_*,
#   VELOZ_BIN; and those of backup_wal.sh, backup_config.sh and backup_postgres.sh.
#
# Exit codes: 0 done; 1 a step failed (each failed step is named); 2 bad usage or setting;
# 4 another backup_all.sh is running.
set -euo pipefail
# shellcheck source=scripts/backup/lib.sh
source "$(dirname "$0")/lib.sh"
umask 077

only_help "$@"
keep=$(keep_count VELOZ_BACKUP_KEEP_HISTORY 14)
store=$(history_store_kind)
require_veloz
take_lock

failed=()
out=""
trap 'remove_incomplete_backup $?' EXIT

# Run one of the other scripts; a concurrent run of it (exit 4, e.g. cron's backup_wal.sh)
# is waited for, a few times.
run_script() {
    local name=$1 code tries=0
    shift
    while :; do
        code=0
        "$BACKUP_SCRIPTS/$name" "$@" >/dev/null || code=$?
        [ "$code" -eq "$EXIT_LOCKED" ] && [ $tries -lt 6 ] || return "$code"
        tries=$((tries + 1))
        log "$name is running elsewhere; waiting"
        sleep 5
    done
}

sqlite_history() {
    local parent=$VELOZ_BACKUP_DIR/history summary
    out=$(new_backup_dir "$parent") || return 1
    log "history store $(redact_url "$VELOZ_DATABASE_URL") into $out (online backup)"
    summary=$(veloz_cli db backup "$out/veloz.db" --url "$VELOZ_DATABASE_URL" --info "$out/info.json") || return 1
    log "$summary"
    write_manifest "$out" || return 1
    local done_dir=$out
    out=""
    upload_if_configured "$done_dir" || return 1
    prune_backups "$parent" "$keep"
}

postgres_history() {
    log "history store $(redact_url "$VELOZ_DATABASE_URL"): backup_postgres.sh -t full"
    run_script backup_postgres.sh -t full || return 1
    upload_if_configured "$(newest_complete "$VELOZ_BACKUP_DIR/postgres/full")"
}

case $store in
    sqlite) sqlite_history || failed+=("history store (SQLite)") ;;
    postgres) postgres_history || failed+=("history store (PostgreSQL)") ;;
    none) log "VELOZ_DATABASE_URL=none: no history store to back up" ;;
esac
log "journal: backup_wal.sh"
run_script backup_wal.sh || failed+=("journal (backup_wal.sh)")
log "configuration: backup_config.sh"
run_script backup_config.sh || failed+=("configuration (backup_config.sh)")

if [ ${#failed[@]} -gt 0 ]; then
    die $EXIT_FAILED "$(printf '%s, ' "${failed[@]}" | sed 's/, $//') failed (see the lines above)"
fi
log "done"

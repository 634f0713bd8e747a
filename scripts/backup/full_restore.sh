#!/usr/bin/env bash
# full_restore.sh: rebuild a host from its newest complete backups (site loss).
#
# Usage: full_restore.sh -y -s <s3://bucket/prefix | DIR>
#
#   -s SOURCE  where the backups are: an S3 location (as VELOZ_S3_BUCKET) or a backup
#              root directory laid out as VELOZ_BACKUP_DIR is (wal/, config/, history/,
#              postgres/full/).
#   -y         go ahead without asking; without it the script asks on a terminal and
#              refuses otherwise.
#   --help     this text.
#
# The engine must be stopped (refused, exit 3, while one holds the journal). From SOURCE
# the newest complete set (one with MANIFEST.sha256) of each kind is used; from S3 they are
# downloaded first into $VELOZ_BACKUP_DIR/s3-restore/<stamp>/ (kept). Then:
# 1. configuration -> VELOZ_CONFIG_DIR (default /etc/veloz); the existing directory is
#    moved aside to VELOZ_CONFIG_DIR.replaced-<stamp>. VELOZ_WAL_DIR and
#    VELOZ_DATABASE_URL not set in the environment are then read from the restored env file.
# 2. journal -> VELOZ_WAL_DIR through restore_wal.sh (the current one moved aside).
# 3. history store: SQLite: the copy goes to the URL's path (the old file moved aside to
#    <path>.replaced-<stamp>) and its rows are checked against info.json; PostgreSQL:
#    restore_postgres.sh -t full -f DIR.
# Before anything is replaced, every set's checksums are checked (exit 5), and a history
# backup holding journal entries past the journal backup's end is refused (exit 5).
# Then it prints how to start the engine.
#
# Settings (environment, then VELOZ_ENV_FILE, default /etc/veloz/veloz.env):
#   VELOZ_CONFIG_DIR, VELOZ_WAL_DIR, VELOZ_DATABASE_URL, VELOZ_BACKUP_DIR (/backup),
#   VELOZ_S3_ENDPOINT_URL, AWS_*, VELOZ_BIN.
#
# Exit codes: 0 restored; 1 a step failed (the last line names it); 2 bad usage, no
# backup, or not confirmed; 3 refused: an engine holds the journal; 4 another
# full_restore.sh is running; 5 a backup fails its checksums or verification.
set -euo pipefail
ORIGINAL_ENV=" $(compgen -e | tr '\n' ' ') "
# shellcheck source=scripts/backup/lib.sh
source "$(dirname "$0")/lib.sh"

source_root="" yes=false
while [ $# -gt 0 ]; do
    case $1 in
        -h | --help) print_help; exit 0 ;;
        -y) yes=true; shift ;;
        -s) [ $# -ge 2 ] || die $EXIT_USAGE "-s needs s3://bucket/prefix or a directory"; source_root=$2; shift 2 ;;
        *) die $EXIT_USAGE "unknown argument '$1' (see --help)" ;;
    esac
done
[ -n "$source_root" ] || die $EXIT_USAGE "-s SOURCE is required (see --help)"
require_veloz
case $source_root in
    s3://*) ;;
    *) [ -d "$source_root" ] || die $EXIT_USAGE "no backup directory at $source_root" ;;
esac

if ! $yes; then
    [ -t 0 ] || die $EXIT_USAGE "not confirmed: pass -y to restore without a terminal"
    printf 'Replace the configuration in %s, the journal in %s and the history store from %s? Type yes: ' \
        "$VELOZ_CONFIG_DIR" "$VELOZ_WAL_DIR" "$source_root" >&2
    read -r answer
    [ "$answer" = yes ] || die $EXIT_USAGE "not confirmed"
fi

if [ -d "$VELOZ_WAL_DIR" ]; then
    exec 8<>"$VELOZ_WAL_DIR/.lock" || die $EXIT_FAILED "cannot open $VELOZ_WAL_DIR/.lock"
    flock -n 8 || die $EXIT_REFUSED "an engine holds the journal $VELOZ_WAL_DIR: stop it first (systemctl stop veloz)"
    exec 8>&-
fi
take_lock
stamp=$(backup_stamp)


if [[ $source_root == s3://* ]]; then
    root=$VELOZ_BACKUP_DIR/s3-restore/$stamp
    log "listing $source_root"
    listing=$(veloz_cli backup list --bucket "$source_root") || die $EXIT_FAILED "cannot list $source_root"
    for kind in wal config history postgres/full; do
        newest=$(printf '%s\n' "$listing" | awk -v k="$kind" '$1 == k { s = $2 } END { print s }')
        if [ -z "$newest" ]; then
            [ "$kind" = wal ] && die $EXIT_USAGE "no complete journal backup in $source_root"
            log "no complete $kind backup in $source_root"
            continue
        fi
        log "downloading $kind/$newest"
        (umask 077 && mkdir -p "$root/$kind")
        summary=$(veloz_cli backup download "$kind/$newest" "$root/$kind/$newest" --bucket "$source_root") \
            || die $EXIT_FAILED "cannot download $kind/$newest"
        log "$summary"
    done
else
    root=$(cd "$source_root" && pwd -P)
fi

wal_set=$(newest_complete "$root/wal")
[ -n "$wal_set" ] || die $EXIT_USAGE "no complete journal backup under $root/wal"
config_set=$(newest_complete "$root/config")
wal_seq=$(sed -n 's/^  "last_seq": \([0-9][0-9]*\),$/\1/p' "$wal_set/snapshot.json")
# Everything is checked before anything is replaced: every set's checksums, and that no
# history store backup is ahead of the journal backup (the engine would hand out again
# sequence numbers the projection believes it holds).
for set in "$wal_set" ${config_set:+"$config_set"} \
    "$(newest_complete "$root/history")" "$(newest_complete "$root/postgres/full")"; do
    [ -n "$set" ] || continue
    check_manifest "$set" >&2 || die $EXIT_VERIFY "$set fails its checksums"
    [ -f "$set/info.json" ] || continue
    store_seq=$(grep -o '"projector_last_seq" *: *[0-9][0-9]*' "$set/info.json" | grep -o '[0-9]*$' || true)
    if [ -n "$store_seq" ] && [ -n "$wal_seq" ] && [ "$store_seq" -gt "$wal_seq" ]; then
        die $EXIT_VERIFY "the history backup $set holds journal entries up to $store_seq, the journal backup $wal_set only to $wal_seq: restore from a set whose journal backup is newer"
    fi
done

# 1. configuration
if [ -n "$config_set" ]; then
    log "configuration $config_set -> $VELOZ_CONFIG_DIR"
    if [ -e "$VELOZ_CONFIG_DIR" ]; then
        mv -- "$VELOZ_CONFIG_DIR" "$VELOZ_CONFIG_DIR.replaced-$stamp" || die $EXIT_FAILED "cannot move $VELOZ_CONFIG_DIR aside"
        log "previous configuration moved aside to $VELOZ_CONFIG_DIR.replaced-$stamp"
    fi
    if ! { mkdir -p "$VELOZ_CONFIG_DIR" && cp -a -- "$config_set/." "$VELOZ_CONFIG_DIR/"; }; then
        die $EXIT_FAILED "cannot copy the configuration into $VELOZ_CONFIG_DIR"
    fi
    rm -f -- "$VELOZ_CONFIG_DIR/MANIFEST.sha256"
    # Where the restored settings put the journal and the store, unless the caller said.
    for key in VELOZ_WAL_DIR VELOZ_DATABASE_URL; do
        [[ $ORIGINAL_ENV == *" $key "* ]] || unset "$key"
    done
    load_env_file
    VELOZ_WAL_DIR=${VELOZ_WAL_DIR:-/var/lib/veloz/wal}
    VELOZ_DATABASE_URL=${VELOZ_DATABASE_URL:-sqlite:////var/lib/veloz/veloz.db}
    export VELOZ_WAL_DIR VELOZ_DATABASE_URL
else
    log "no configuration backup: $VELOZ_CONFIG_DIR left as it is"
fi

store=$(history_store_kind)
case $store in
    sqlite) kind=history ;;
    postgres) kind=postgres/full ;;
    none) kind=none ;;
esac
store_set=""
[ "$kind" = none ] || store_set=$(newest_complete "$root/$kind")

# 2. journal
log "journal $wal_set -> $VELOZ_WAL_DIR"
"$BACKUP_SCRIPTS/restore_wal.sh" "$wal_set" || exit $?

# 3. history store
case $kind in
    none) log "VELOZ_DATABASE_URL=none: no history store to restore" ;;
    history)
        if [ -z "$store_set" ]; then
            log "no SQLite history backup: the engine rebuilds the store from the journal's checkpoint"
        else
            db=${VELOZ_DATABASE_URL#sqlite:///}
            log "history store $store_set -> $db"
            for suffix in "" -wal -shm; do
                if [ -e "$db$suffix" ]; then
                    mv -- "$db$suffix" "$db$suffix.replaced-$stamp" || die $EXIT_FAILED "cannot move $db$suffix aside"
                    log "previous $db$suffix moved aside to $db$suffix.replaced-$stamp"
                fi
            done
            if ! { mkdir -p "$(dirname "$db")" && cp -- "$store_set/veloz.db" "$db"; }; then
                die $EXIT_FAILED "cannot copy the store to $db"
            fi
            chown --reference="$(dirname "$db")" "$db" 2>/dev/null || true
            summary=$(veloz_cli db counts --url "sqlite:///$db" --expect "$store_set/info.json") \
                || die $EXIT_VERIFY "the restored store's rows differ from $store_set/info.json"
            log "$summary"
        fi
        ;;
    postgres/full)
        [ -n "$store_set" ] || die $EXIT_USAGE "no complete PostgreSQL backup under $root/postgres/full"
        log "history store $store_set -> $(redact_url "$VELOZ_DATABASE_URL") (restore_postgres.sh -t full)"
        "$BACKUP_SCRIPTS/restore_postgres.sh" -t full -f "$store_set" || die $EXIT_FAILED "restore_postgres.sh failed"
        ;;
esac

log "done: restored from $root"
log "start the engine: systemctl start veloz (or: $VELOZ_BIN engine), then curl -f http://localhost:8080/health/ready"

#!/usr/bin/env bash
# backup_postgres.sh [-t full|base] [--url URL]: back up VeloZ's PostgreSQL history store.
#
#   -t full   (default) pg_dump custom format of the database VELOZ_DATABASE_URL names:
#             $VELOZ_BACKUP_DIR/postgres/full/<stamp>/veloz.dump + info.json (server
#             version, database, owner, snapshot time, sizes, rows per table, all taken
#             from the dump's own snapshot) + MANIFEST.sha256 (written last).
#             Restore with restore_postgres.sh -t full.
#   -t base   pg_basebackup of the whole cluster (tar, gzip, no WAL inside):
#             $VELOZ_BACKUP_DIR/postgres/base/<stamp>/base.tar.gz + backup_manifest +
#             info.json + MANIFEST.sha256. Together with the WAL archive
#             ($VELOZ_BACKUP_DIR/postgres/wal_archive/, filled by the server's
#             archive_command) it is what restore_postgres.sh -t pitr -T TIME replays.
#             Refused (exit 2) when the server has archive_mode off or wal_level minimal.
#             The role needs the REPLICATION attribute (or superuser) and pg_hba.conf a
#             "replication" line for it.
#   --url URL the database to back up (default VELOZ_DATABASE_URL; postgresql:// only).
#   --help    this text.
#
# Server settings for PITR (postgresql.conf, then restart PostgreSQL):
#   wal_level = replica
#   archive_mode = on
#   archive_command = '/opt/veloz/scripts/backup/archive_wal.sh %p %f /backup/postgres/wal_archive'
#   archive_timeout = 60
# See docs/operations/postgres-backup.md.
#
# Settings: VELOZ_DATABASE_URL, VELOZ_BACKUP_DIR (default /backup), VELOZ_PG_BIN (a
# directory searched first for pg_dump/pg_basebackup/psql), VELOZ_ENV_FILE. A password in
# the URL is handed to libpq as PGPASSWORD, never on a command line, and never printed.
#
# Prints the new backup's directory on stdout (the log goes to stderr).
#
# Exit codes: 0 done; 1 a step failed (the last line names it); 2 bad usage or setting
# (not a postgresql:// URL, a tool missing, archive_mode off for base); 4 another
# backup_postgres.sh is running.
set -euo pipefail
# shellcheck source=scripts/backup/lib.sh
source "$(dirname "$0")/lib.sh"

# shellcheck source=scripts/backup/pg.sh
source "$(dirname "$0")/pg.sh"

# --- arguments ---------------------------------------------------------------------------

kind=full
url=$VELOZ_DATABASE_URL
while [ $# -gt 0 ]; do
    case $1 in
        -h | --help) print_help; exit 0 ;;
        -t) [ $# -ge 2 ] || die $EXIT_USAGE "-t needs full or base"; kind=$2; shift 2 ;;
        --url) [ $# -ge 2 ] || die $EXIT_USAGE "--url needs a URL"; url=$2; shift 2 ;;
        *) die $EXIT_USAGE "unknown argument '$1' (see --help)" ;;
    esac
done
case $kind in full | base) ;; *) die $EXIT_USAGE "-t must be full or base, not '$kind'" ;; esac

shown=$(redact_url "$url")
pg_connection "$url"
url=$PG_URL
PSQL=$(pg_tool psql)
take_lock

out=""
snap_pid=""
child=""
cleanup() {
    local code=$?
    local pid
    for pid in $snap_pid $child; do
        kill "$pid" 2>/dev/null || true
    done
    [ -z "$out" ] || rm -f -- "$out.log"
    remove_incomplete_backup "$code"
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

# A fresh directory named by the UTC time (a second run within the same second waits).

log "connecting to $shown"
if ! answer=$(pg_query "$url" "SELECT current_setting('server_version')"); then
    die $EXIT_FAILED "cannot connect to $shown: ${answer%%$'\n'*}"
fi
log "server PostgreSQL $answer"

# Facts about the database, as one JSON object, from whatever snapshot runs it.
FACTS_SQL="json_build_object(
    'database', current_database(),
    'owner', (SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()),
    'encoding', pg_encoding_to_char((SELECT encoding FROM pg_database WHERE datname = current_database())),
    'server_version', current_setting('server_version'),
    'server_version_num', current_setting('server_version_num')::int,
    'database_bytes', pg_database_size(current_database()),
    'counts', coalesce((
        SELECT json_object_agg(
            CASE WHEN n.nspname = 'public' THEN c.relname ELSE n.nspname || '.' || c.relname END,
            (xpath('/row/n/text()', query_to_xml(
                format('SELECT count(*) AS n FROM %I.%I', n.nspname, c.relname),
                false, true, '')))[1]::text::bigint
            ORDER BY n.nspname, c.relname)
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
          AND n.nspname NOT LIKE 'pg\\_%'), '{}'::json),
    'projector_last_seq', (SELECT CASE WHEN to_regclass('projector_state') IS NOT NULL
        THEN (xpath('/row/s/text()', query_to_xml(
            'SELECT max(last_seq) AS s FROM projector_state', false, true, '')))[1]::text::bigint
        END))"
UTC_TEXT="'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'"

full_backup() {
    local pg_dump snapshot facts line started finished bytes version
    pg_dump=$(pg_tool pg_dump)
    version=$("$pg_dump" --version)
    out=$(new_backup_dir "$VELOZ_BACKUP_DIR/postgres/full")
    log "writing $out"

    # One repeatable-read transaction held open: pg_dump reads its exported snapshot, and
    # info.json's counts come from the same snapshot, so they match the dump exactly.
    coproc SNAP { "$PSQL" -X -A -t -q -w -v ON_ERROR_STOP=1 -d "$url" 2>&1; }
    # shellcheck disable=SC2153 # coproc sets SNAP_PID
    snap_pid=$SNAP_PID
    printf '%s\n' "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY;" \
        "SELECT pg_export_snapshot();" >&"${SNAP[1]}"
    IFS= read -r -t 60 snapshot <&"${SNAP[0]}" || snapshot=""
    [[ $snapshot =~ ^[0-9A-F]+-[0-9A-F]+-[0-9]+$ ]] \
        || die $EXIT_FAILED "cannot open a snapshot on $shown: ${snapshot:-no answer}"
    printf '%s\n' "SELECT $FACTS_SQL, to_char(now() AT TIME ZONE 'UTC', $UTC_TEXT);" >&"${SNAP[1]}"
    IFS= read -r -t 600 line <&"${SNAP[0]}" || line=""
    [[ $line == '{'*'|'* ]] || die $EXIT_FAILED "cannot read the database's facts: ${line:-no answer}"
    facts=${line%|*}
    started=${line##*|}

    log "pg_dump -Fc (snapshot $snapshot taken $started)"
    if ! line=$("$pg_dump" -Fc -w --snapshot="$snapshot" -f "$out/veloz.dump" -d "$url" 2>&1); then
        die $EXIT_FAILED "pg_dump failed: ${line%%$'\n'*}"
    fi
    printf '%s\n' "COMMIT;" '\q' >&"${SNAP[1]}"
    wait "$snap_pid" || die $EXIT_FAILED "the snapshot session ended badly"
    snap_pid=""

    bytes=$(stat -c %s "$out/veloz.dump")
    finished=$(date -u +%Y-%m-%dT%H:%M:%S.%6NZ)
    line=$(pg_query "$url" "SELECT json_build_object(
        'kind', 'full', 'format', 'pg_dump custom (-Fc)', 'file', 'veloz.dump',
        'snapshot_at', $(sql_literal "$started"), 'finished_at', $(sql_literal "$finished"),
        'dump_bytes', $bytes, 'pg_dump_version', $(sql_literal "$version"),
        'url', $(sql_literal "$shown"))") \
        || die $EXIT_FAILED "cannot write info.json: ${line%%$'\n'*}"
    printf '%s, %s\n' "${line%\}}" "${facts#\{}" >"$out/info.json"
    log "dump $bytes bytes; rows: $(printf '%s' "$facts" | sed -E 's/.*"counts" : (\{[^}]*\}).*/\1/')"
}

base_backup() {
    local pg_basebackup setting archive_cmd archive_dir facts control line bytes started finished
    pg_basebackup=$(pg_tool pg_basebackup)

    setting=$(pg_query "$url" "SHOW archive_mode") || die $EXIT_FAILED "cannot read archive_mode: $setting"
    if [ "$setting" = off ]; then
        die $EXIT_USAGE "archive_mode is off on $shown: a base backup is useless for PITR without archived WAL; set wal_level = replica, archive_mode = on and archive_command (docs/operations/postgres-backup.md), restart PostgreSQL, then retry"
    fi
    setting=$(pg_query "$url" "SHOW wal_level") || die $EXIT_FAILED "cannot read wal_level: $setting"
    [ "$setting" != minimal ] || die $EXIT_USAGE "wal_level is minimal on $shown: set wal_level = replica and restart PostgreSQL"
    archive_dir="$VELOZ_BACKUP_DIR/postgres/wal_archive"
    if archive_cmd=$(pg_query "$url" "SHOW archive_command"); then
        case $archive_cmd in
            '' | '(disabled)') die $EXIT_USAGE "archive_command is empty on $shown: nothing reaches $archive_dir" ;;
            *"$archive_dir"*) log "archive_command writes to $archive_dir" ;;
            *) log "warning: archive_command does not name $archive_dir; restore_postgres.sh -t pitr reads WAL from there" ;;
        esac
    else
        log "archive_command not readable with this role (needs pg_read_all_settings): not checked"
    fi
    # A failing archiver would leave pg_basebackup waiting for its last segment forever.
    line=$(pg_query "$url" "SELECT coalesce(last_failed_time > coalesce(last_archived_time, '-infinity'), false)
        || ' ' || coalesce(last_failed_wal, '-') FROM pg_stat_archiver") \
        || die $EXIT_FAILED "cannot read pg_stat_archiver: $line"
    if [ "${line%% *}" = true ]; then
        die $EXIT_FAILED "WAL archiving is failing on $shown (last failed segment ${line#* }): fix archive_command first (see the server log)"
    fi

    out=$(new_backup_dir "$VELOZ_BACKUP_DIR/postgres/base")
    line=$(pg_query "$url" "SELECT $FACTS_SQL, to_char(now() AT TIME ZONE 'UTC', $UTC_TEXT)") \
        || die $EXIT_FAILED "cannot read the server's facts: ${line%%$'\n'*}"
    facts=${line%|*}
    started=${line##*|}
    # pg_control_system() is for superusers and pg_monitor; without it the id stays null.
    control=$(pg_query "$url" "SELECT json_build_object(
        'system_identifier', (SELECT system_identifier::text FROM pg_control_system()),
        'timeline', (SELECT timeline_id FROM pg_control_checkpoint()))") \
        || control='{"system_identifier": null, "timeline": null}'
    log "pg_basebackup into $out (tar, gzip, WAL from the archive)"
    # pg_basebackup -X none returns once the backup's last WAL segment is archived, and
    # waits forever while the archiver fails: watch it, and give up after
    # VELOZ_PG_ARCHIVE_WAIT_S seconds of failing archiving.
    local wait_s=${VELOZ_PG_ARCHIVE_WAIT_S:-300} failing_since="" now rc=0
    [[ $wait_s =~ ^[0-9]+$ ]] || die $EXIT_USAGE "VELOZ_PG_ARCHIVE_WAIT_S must be a number of seconds"
    "$pg_basebackup" -d "$url" -w -D "$out" -Ft -z -X none -c fast \
        -l "veloz $(basename "$out")" >"$out.log" 2>&1 &
    child=$!
    local tick=0
    while kill -0 "$child" 2>/dev/null; do
        # Notice the end within 0.2 s (finished_ns below should be close to it), but ask
        # the server about the archiver only every second.
        sleep 0.2
        tick=$((tick + 1))
        [ $((tick % 5)) -eq 0 ] || continue
        line=$(pg_query "$url" "SELECT coalesce(last_failed_time > coalesce(last_archived_time,
            '-infinity'), false) || ' ' || coalesce(last_failed_wal, '-') FROM pg_stat_archiver") || continue
        if [ "${line%% *}" != true ]; then
            failing_since=""
            continue
        fi
        now=$(date +%s)
        if [ -z "$failing_since" ]; then
            failing_since=$now
            log "WAL archiving is failing (segment ${line#* }); waiting up to ${wait_s}s for it to recover"
        elif [ $((now - failing_since)) -ge "$wait_s" ]; then
            kill "$child" 2>/dev/null || true
            wait "$child" 2>/dev/null || true
            child=""
            die $EXIT_FAILED "WAL archiving failed for ${wait_s}s (segment ${line#* }): the base backup cannot complete; fix archive_command (see the server log)"
        fi
    done
    wait "$child" || rc=$?
    child=""
    line=$(cat "$out.log")
    rm -f -- "$out.log"
    [ "$rc" -eq 0 ] || die $EXIT_FAILED "pg_basebackup failed: ${line%%$'\n'*}"
    [ -f "$out/base.tar.gz" ] || die $EXIT_FAILED "pg_basebackup wrote no base.tar.gz"
    if [ "$(find "$out" -maxdepth 1 -name '*.tar.gz' | wc -l)" -gt 1 ]; then
        log "warning: the cluster has tablespaces; restore_postgres.sh -t pitr restores base.tar.gz only"
    fi
    bytes=$(du -sb "$out" | cut -f1)
    # The server's clock after pg_basebackup returned (it returns once the backup's end is
    # in the WAL archive): PITR to any later time can start from this backup.
    line=$(pg_query "$url" "SELECT json_build_object(
        'kind', 'base', 'format', 'pg_basebackup -Ft -z -X none', 'file', 'base.tar.gz',
        'started_at', $(sql_literal "$started"),
        'finished_at', to_char(clock_timestamp() AT TIME ZONE 'UTC', $UTC_TEXT),
        'finished_ns', floor(extract(epoch FROM clock_timestamp()) * 1000000000)::bigint,
        'backup_bytes', $bytes,
        'pg_basebackup_version', $(sql_literal "$("$pg_basebackup" --version)"),
        'url', $(sql_literal "$shown"), 'wal_archive', $(sql_literal "$archive_dir"))") \
        || die $EXIT_FAILED "cannot write info.json: ${line%%$'\n'*}"
    printf '%s, %s, %s\n' "${line%\}}" "${control:1:${#control}-2}" "${facts#\{}" >"$out/info.json"
    finished=$(printf '%s' "$line" | sed -E 's/.*"finished_at" : "([^"]*)".*/\1/')
    log "base backup $bytes bytes, usable for PITR to times after $finished"
}

case $kind in
    full) full_backup ;;
    base) base_backup ;;
esac
write_manifest "$out" || die $EXIT_FAILED "cannot write $out/MANIFEST.sha256"
log "done: $out"
printf '%s\n' "$out" # stdout: the new backup's directory, for callers such as backup_all.sh

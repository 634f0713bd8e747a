#!/usr/bin/env bash
# restore_postgres.sh -t full|pitr [-T "YYYY-MM-DD HH:MM:SS"] [-f BACKUP_DIR] [--url URL] [--force]
# Restore VeloZ's PostgreSQL history store.
#
#   -t full   Restore a pg_dump backup (backup_postgres.sh -t full): the newest complete
#             $VELOZ_BACKUP_DIR/postgres/full/<stamp>/, or -f DIR. Checks its
#             MANIFEST.sha256, restores into a new database beside the target (one
#             transaction), checks every table's row count against info.json, then swaps:
#             the target database, if it exists, is renamed <db>_pre_restore_<stamp> (kept,
#             never dropped) and the restored one takes its name. The database is created
#             if missing. Refused (exit 3) while other sessions are connected to the target.
#             The server must be running. The URL's role needs CREATEDB and must own the
#             target (or be a superuser); the roles owning the dumped objects must exist.
#   -t pitr   Point-in-time recovery of the whole cluster (every database in it) from a
#             base backup (backup_postgres.sh -t base) and the WAL archive
#             $VELOZ_BACKUP_DIR/postgres/wal_archive/:
#               1. picks the newest complete base backup finished before -T (or -f DIR);
#               2. refuses (exit 3) while client sessions are connected (stop VeloZ first;
#                  --force disconnects them);
#               3. stops the cluster (VELOZ_PG_SERVICE with systemctl, else pg_ctl -m fast);
#               4. moves the data directory VELOZ_PGDATA aside to
#                  <VELOZ_PGDATA>.pre-pitr-<stamp> (never deleted) and unpacks the base
#                  backup in its place, with the old pg_wal's segments copied in (WAL not
#                  yet archived);
#               5. writes recovery.signal and, in postgresql.auto.conf, restore_command,
#                  recovery_target_time and recovery_target_action = 'promote';
#               6. starts the cluster, waits until recovery is over and checks where it
#                  stopped, then removes those settings again.
#             Without -T it replays all archived WAL (the latest state the archive has).
#   -T TIME   Recovery target: "YYYY-MM-DD HH:MM:SS" (also with a "T", fractional seconds)
#             in UTC, unless it carries a zone: Z, UTC, +HH, +HH:MM, +HHMM. Nothing
#             committed after TIME is restored. Only with -t pitr.
#   -f DIR    The backup directory to restore (a postgres/full/<stamp> or postgres/base/<stamp>).
#   --url URL The database (full: the target, default VELOZ_DATABASE_URL; pitr: used to
#             list connected sessions and report row counts afterwards).
#   --force   pitr only: stop the cluster even with client sessions connected.
#   --help    this text.
#
# After either restore, start VeloZ: its projector re-projects the journal entries after
# projector_state.last_seq (the restored position), so orders and fills the journal still
# holds come back; users, API keys, the audit log and samples are as of the backup.
#
# Settings: VELOZ_DATABASE_URL, VELOZ_BACKUP_DIR (/backup), VELOZ_PGDATA (pitr: the data
# directory), VELOZ_PG_SERVICE (pitr: a systemd unit to stop/start instead of pg_ctl, e.g.
# postgresql@15-main), VELOZ_PG_BIN (server and client tools; default
# /usr/lib/postgresql/<version>/bin, then PATH), VELOZ_PG_USER (the cluster's OS user;
# default the data directory's owner), VELOZ_PG_CTL_OPTIONS (pg_ctl -o options, e.g.
# "-c config_file=/etc/postgresql/15/main/postgresql.conf"), VELOZ_PG_RECOVERY_TIMEOUT_S
# (3600), VELOZ_ENV_FILE. No password is printed or put on a command line.
#
# Exit codes: 0 restored; 1 a step failed (no backup before -T, recovery did not reach the
# target, the server did not start: the last line names it); 2 bad usage or setting (bad
# -t or -T, -T in the future, a tool missing, VELOZ_PGDATA unset); 3 refused: sessions are
# connected; 4 another restore_postgres.sh is running; 5 the backup fails its checksums or
# the restored row counts differ from the backup's.
set -euo pipefail
# shellcheck source=scripts/backup/lib.sh
source "$(dirname "$0")/lib.sh"

# shellcheck source=scripts/backup/pg.sh
source "$(dirname "$0")/pg.sh"

# A value of a flat key in our own info.json ("key": value).
info_value() {
    sed -nE "s/.*\"$2\" ?: ?\"?([^\",}]*)\"?[,}].*/\\1/p" "$1/info.json" 2>/dev/null | head -n 1
}

# The -T argument as nanoseconds since the epoch (TARGET_NS) and PostgreSQL's UTC text
# (TARGET_PG).
parse_target() {
    local text=$1 day clock frac zone hh mm seconds nanos
    [[ $text =~ ^([0-9]{4}-[0-9]{2}-[0-9]{2})[T\ ]([0-9]{2}:[0-9]{2}:[0-9]{2})(\.[0-9]{1,6})?\ ?(Z|UTC|[+-][0-9]{2}(:?[0-9]{2})?)?$ ]] \
        || die $EXIT_USAGE "-T '$text' is not a time like \"2026-02-23 11:55:00\" (UTC unless it ends in Z, UTC or +HH:MM)"
    day=${BASH_REMATCH[1]} clock=${BASH_REMATCH[2]} frac=${BASH_REMATCH[3]} zone=${BASH_REMATCH[4]}
    case $zone in
        '' | Z | UTC) zone=+00:00 ;;
        *)
            hh=${zone:1:2} mm=${zone:3}
            mm=${mm#:}
            zone="${zone:0:1}$hh:${mm:-00}"
            ;;
    esac
    # GNU date refuses impossible dates (2026-02-30, 25:00:00).
    seconds=$(date -u -d "$day $clock $zone" +%s 2>/dev/null) \
        || die $EXIT_USAGE "-T '$text' is not a valid time"
    [ "$(date -u -d "@$((seconds))" +%s)" = "$seconds" ] || die $EXIT_USAGE "-T '$text' is not a valid time"
    frac=${frac#.}
    nanos=$(printf '%-9s' "$frac")
    nanos=${nanos// /0}
    TARGET_NS=$((seconds * 1000000000 + 10#$nanos))
    TARGET_PG="$(date -u -d "@$seconds" '+%Y-%m-%d %H:%M:%S')${frac:+.$frac}+00"
}

# --- arguments ---------------------------------------------------------------------------

kind="" target="" backup="" url=$VELOZ_DATABASE_URL force=false
while [ $# -gt 0 ]; do
    case $1 in
        -h | --help) print_help; exit 0 ;;
        -t) [ $# -ge 2 ] || die $EXIT_USAGE "-t needs full or pitr"; kind=$2; shift 2 ;;
        -T) [ $# -ge 2 ] || die $EXIT_USAGE "-T needs a time"; target=$2; shift 2 ;;
        -f) [ $# -ge 2 ] || die $EXIT_USAGE "-f needs a backup directory"; backup=$2; shift 2 ;;
        --url) [ $# -ge 2 ] || die $EXIT_USAGE "--url needs a URL"; url=$2; shift 2 ;;
        --force) force=true; shift ;;
        *) die $EXIT_USAGE "unknown argument '$1' (see --help)" ;;
    esac
done
case $kind in
    full) [ -z "$target" ] || die $EXIT_USAGE "-T is for -t pitr (a full restore is the dump's state)" ;;
    pitr) ;;
    '') die $EXIT_USAGE "-t full or -t pitr is required (see --help)" ;;
    *) die $EXIT_USAGE "-t must be full or pitr, not '$kind'" ;;
esac
if [ -n "$target" ]; then
    parse_target "$target"
    now_ns=$(date +%s%N)
    [ "$TARGET_NS" -le "$now_ns" ] || die $EXIT_USAGE "-T $TARGET_PG is in the future"
fi
stamp=$(backup_stamp)

# The newest complete backup under DIR (one with its MANIFEST.sha256) passing a filter.
newest_backup() {
    local parent=$1 accept=$2 dir
    [ -d "$parent" ] || return 0
    while IFS= read -r dir; do
        [ -f "$dir/MANIFEST.sha256" ] || continue
        if "$accept" "$dir"; then
            printf '%s\n' "$dir"
            return
        fi
    done < <(find "$parent" -mindepth 1 -maxdepth 1 -type d | LC_ALL=C sort -r)
}

any_backup() { :; }

verify_backup_dir() {
    local dir=$1 file=$2
    [ -f "$dir/$file" ] || die $EXIT_USAGE "$dir has no $file"
    [ -f "$dir/MANIFEST.sha256" ] || die $EXIT_VERIFY "$dir has no MANIFEST.sha256: an incomplete backup"
    log "checking $dir/MANIFEST.sha256"
    check_manifest "$dir" >/dev/null 2>&1 || die $EXIT_VERIFY "$dir does not match its MANIFEST.sha256"
}

# --- full --------------------------------------------------------------------------------

restore_full() {
    local shown admin db exists sessions temp aside owner counts expected line pg_restore
    shown=$(redact_url "$url")
    pg_connection "$url"
    db=$PG_DBNAME
    [ -n "$db" ] || die $EXIT_USAGE "$shown names no database"
    PSQL=$(pg_tool psql)
    pg_restore=$(pg_tool pg_restore)
    if [ -z "$backup" ]; then
        backup=$(newest_backup "$VELOZ_BACKUP_DIR/postgres/full" any_backup)
        [ -n "$backup" ] || die $EXIT_FAILED "no complete backup under $VELOZ_BACKUP_DIR/postgres/full"
    fi
    backup=$(cd "$backup" 2>/dev/null && pwd) || die $EXIT_USAGE "no backup directory $backup"
    verify_backup_dir "$backup" veloz.dump
    "$pg_restore" --list "$backup/veloz.dump" >/dev/null 2>&1 \
        || die $EXIT_VERIFY "$backup/veloz.dump is not a pg_dump custom-format archive"

    log "restoring $backup into $shown"
    # Connect to a maintenance database to create, rename and inspect the target.
    admin=""
    for candidate in postgres template1; do
        [ "$candidate" != "$db" ] || continue
        if line=$(pg_query "$(url_for_db "$candidate")" "SELECT 1"); then
            admin=$(url_for_db "$candidate")
            break
        fi
    done
    [ -n "$admin" ] || die $EXIT_FAILED "cannot connect to the server of $shown: ${line%%$'\n'*}"

    # NAME, or NAME_2, NAME_3... if taken (two restores within one second).
    unused_database_name() {
        local name=$1 n=1
        while [ "$(pg_query "$admin" "SELECT count(*) FROM pg_database WHERE datname = $(sql_literal "$name")")" != 0 ]; do
            n=$((n + 1))
            name="$1_$n"
            [ "$n" -lt 100 ] || die $EXIT_FAILED "cannot find a free database name like $1"
        done
        printf '%s\n' "$name"
    }
    exists=$(pg_query "$admin" "SELECT count(*) FROM pg_database WHERE datname = $(sql_literal "$db")") \
        || die $EXIT_FAILED "cannot list databases: $exists"
    if [ "$exists" = 1 ]; then
        sessions=$(pg_query "$admin" "SELECT string_agg(format('%s (pid %s, %s)', usename, pid,
            coalesce(nullif(application_name, ''), 'no application name')), ', ')
            FROM pg_stat_activity WHERE datname = $(sql_literal "$db") AND pid <> pg_backend_pid()") \
            || die $EXIT_FAILED "cannot list sessions: $sessions"
        [ -z "$sessions" ] || die $EXIT_REFUSED "database $db is in use by $sessions: stop VeloZ (systemctl stop veloz) and other clients first"
        owner=$(pg_query "$admin" "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = $(sql_literal "$db")")
    else
        owner=$(info_value "$backup" owner)
        if [ -z "$owner" ] || [ "$(pg_query "$admin" "SELECT count(*) FROM pg_roles WHERE rolname = $(sql_literal "$owner")")" != 1 ]; then
            owner=$(pg_query "$admin" "SELECT current_user")
        fi
    fi

    temp=$(unused_database_name "${db:0:40}_restore_${stamp,,}")
    aside=$(unused_database_name "${db:0:36}_pre_restore_${stamp,,}")
    log "creating database $temp (owner $owner)"
    line=$(pg_query "$admin" "CREATE DATABASE $(sql_ident "$temp") TEMPLATE template0 OWNER $(sql_ident "$owner")") \
        || die $EXIT_FAILED "cannot create database $temp: ${line%%$'\n'*}"
    drop_temp() {
        pg_query "$admin" "DROP DATABASE IF EXISTS $(sql_ident "$temp")" >/dev/null || true
        scratch_db=""
    }
    scratch_db=$temp # dropped by the EXIT trap if the script stops before the swap

    log "pg_restore (one transaction)"
    if ! line=$("$pg_restore" --exit-on-error --single-transaction -w -d "$(url_for_db "$temp")" \
        "$backup/veloz.dump" 2>&1); then
        drop_temp
        die $EXIT_FAILED "pg_restore failed: $(printf '%s\n' "$line" | grep -m1 -E 'error|ERROR' || printf '%s' "${line%%$'\n'*}")"
    fi

    expected=$(sed -nE 's/.*"counts" ?: ?(\{[^}]*\}).*/\1/p' "$backup/info.json" | tr -d ' ')
    if [ -n "$expected" ]; then
        counts=$(pg_query "$(url_for_db "$temp")" "SELECT coalesce(json_object_agg(
            CASE WHEN n.nspname = 'public' THEN c.relname ELSE n.nspname || '.' || c.relname END,
            (xpath('/row/n/text()', query_to_xml(format('SELECT count(*) AS n FROM %I.%I',
                n.nspname, c.relname), false, true, '')))[1]::text::bigint
            ORDER BY n.nspname, c.relname), '{}'::json)
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
              AND n.nspname NOT LIKE 'pg\\_%'") || counts="cannot count: $counts"
        counts=$(printf '%s' "$counts" | tr -d ' ')
        if [ "$counts" != "$expected" ]; then
            drop_temp
            die $EXIT_VERIFY "restored rows $counts differ from the backup's $expected"
        fi
        log "row counts match the backup: $counts"
    fi

    if [ "$exists" = 1 ]; then
        log "moving the current database aside: $db -> $aside"
        if ! line=$(pg_query "$admin" "ALTER DATABASE $(sql_ident "$db") RENAME TO $(sql_ident "$aside")"); then
            drop_temp
            case $line in
                *"being accessed by other users"*)
                    die $EXIT_REFUSED "database $db came into use during the restore: stop VeloZ and other clients, then retry" ;;
                *) die $EXIT_FAILED "cannot rename $db: ${line%%$'\n'*}" ;;
            esac
        fi
    fi
    if ! line=$(pg_query "$admin" "ALTER DATABASE $(sql_ident "$temp") RENAME TO $(sql_ident "$db")"); then
        [ "$exists" != 1 ] || pg_query "$admin" "ALTER DATABASE $(sql_ident "$aside") RENAME TO $(sql_ident "$db")" >/dev/null || true
        scratch_db=""
        die $EXIT_FAILED "cannot rename $temp to $db (it is kept): ${line%%$'\n'*}"
    fi
    scratch_db=""
    [ "$exists" != 1 ] || log "the previous contents stay in database $aside (DROP DATABASE $aside; when no longer needed)"
    log "done: $db restored from $backup; start VeloZ: it re-projects the journal after projector_state.last_seq $(info_value "$backup" projector_last_seq)"
}

# --- pitr --------------------------------------------------------------------------------

# A base backup is usable for -T when it finished (on the server's clock) before -T.
finished_before_target() {
    local finished
    finished=$(info_value "$1" finished_ns)
    [[ $finished =~ ^[0-9]+$ ]] || return 1
    [ -z "$target" ] || [ "$finished" -lt "$TARGET_NS" ]
}

# Run a command as the cluster's OS user.
as_owner() {
    if [ "$(id -u)" = "$(id -u "$PG_OWNER")" ]; then
        "$@"
    else
        # From /, which the server's user can enter (the caller's directory may be private).
        (cd / && runuser -u "$PG_OWNER" -- "$@")
    fi
}

cluster_running() {
    local code=0
    as_owner "$PG_CTL" -D "$PGDATA" status >/dev/null 2>&1 || code=$?
    [ "$code" -eq 0 ]
}

stop_cluster() {
    if [ -n "${VELOZ_PG_SERVICE:-}" ]; then
        log "stopping PostgreSQL: systemctl stop $VELOZ_PG_SERVICE"
        systemctl stop "$VELOZ_PG_SERVICE" || die $EXIT_FAILED "systemctl stop $VELOZ_PG_SERVICE failed"
    elif cluster_running; then
        log "stopping PostgreSQL: pg_ctl -D $PGDATA stop -m fast"
        as_owner "$PG_CTL" -D "$PGDATA" -m fast -w -t 300 stop >/dev/null \
            || die $EXIT_FAILED "pg_ctl stop failed for $PGDATA"
    else
        log "PostgreSQL is not running on $PGDATA"
    fi
    ! cluster_running || die $EXIT_FAILED "PostgreSQL still runs on $PGDATA (set VELOZ_PG_SERVICE if systemd manages it)"
}

start_cluster() {
    if [ -n "${VELOZ_PG_SERVICE:-}" ]; then
        log "starting PostgreSQL: systemctl start $VELOZ_PG_SERVICE"
        systemctl start "$VELOZ_PG_SERVICE" || die $EXIT_FAILED "systemctl start $VELOZ_PG_SERVICE failed (journalctl -u $VELOZ_PG_SERVICE); the old data directory is $ASIDE"
    else
        log "starting PostgreSQL in recovery: pg_ctl -D $PGDATA start (log $SERVER_LOG)"
        { touch "$SERVER_LOG" && chown "$PG_OWNER:" "$SERVER_LOG"; } 2>/dev/null || true
        local options=()
        [ -z "${VELOZ_PG_CTL_OPTIONS:-}" ] || options=(-o "$VELOZ_PG_CTL_OPTIONS")
        # 9>&-: the server outlives this script and must not inherit take_lock's lock.
        as_owner "$PG_CTL" -D "$PGDATA" -l "$SERVER_LOG" "${options[@]}" -W start >/dev/null 9>&- \
            || die $EXIT_FAILED "pg_ctl start failed (see $SERVER_LOG); the old data directory is $ASIDE"
    fi
}

server_log_tail() {
    local last
    if [ -n "${VELOZ_PG_SERVICE:-}" ]; then
        printf 'see journalctl -u %s' "$VELOZ_PG_SERVICE"
    elif grep -q 'recovery ended before configured recovery target was reached' "$SERVER_LOG" 2>/dev/null; then
        last=$(sed -nE 's/.*last completed transaction was at log time (.*)$/\1/p' "$SERVER_LOG" | tail -n 1)
        printf 'the available WAL ends before any commit after -T (its last commit is at %s), so PostgreSQL cannot tell it reached -T: run again without -T to restore everything the archive holds (see %s)' "${last:-unknown}" "$SERVER_LOG"
    else
        grep -E 'FATAL|PANIC' "$SERVER_LOG" 2>/dev/null | tail -n 1 | sed -E 's/^[^]]*\] //' || true
        printf ' (see %s)' "$SERVER_LOG"
    fi
}

# Wait until pg_control says "in production" (recovery over, promoted).
wait_for_recovery() {
    local timeout=${VELOZ_PG_RECOVERY_TIMEOUT_S:-3600} started state
    [[ $timeout =~ ^[0-9]+$ ]] || die $EXIT_USAGE "VELOZ_PG_RECOVERY_TIMEOUT_S must be a number of seconds"
    started=$(date +%s)
    log "waiting for recovery to finish (up to ${timeout}s)"
    while :; do
        state=$("$PG_CONTROLDATA" -D "$PGDATA" 2>/dev/null | sed -n 's/^Database cluster state: *//p')
        # The unpacked pg_control already says "in production" (copied from a running
        # server): recovery is over only once the server has removed recovery.signal.
        if [ ! -e "$PGDATA/recovery.signal" ] && [ "$state" = "in production" ] && cluster_running; then
            return 0
        fi
        if [ -f "$PGDATA/postmaster.pid" ]; then
            :
        elif [ $(($(date +%s) - started)) -gt 2 ]; then
            die $EXIT_FAILED "PostgreSQL stopped during recovery: $(server_log_tail) (the old data directory is $ASIDE)"
        fi
        [ $(($(date +%s) - started)) -lt "$timeout" ] \
            || die $EXIT_FAILED "recovery not finished after ${timeout}s (state: ${state:-unknown}); it may still be running: see $SERVER_LOG"
        sleep 0.5
    done
}

# Where recovery stopped: the reason in the newest timeline history file.
recovery_stop_reason() {
    local history
    history=$(find "$PGDATA/pg_wal" -maxdepth 1 -name '*.history' | LC_ALL=C sort | tail -n 1)
    [ -n "$history" ] || return 0
    grep -v '^[[:space:]]*$' "$history" | tail -n 1 | cut -f3-
}

# Remove the recovery settings this script added to postgresql.auto.conf.
remove_recovery_settings() {
    local conf=$PGDATA/postgresql.auto.conf kept
    kept=$(sed '/^# restore_postgres.sh recovery settings: begin/,/^# restore_postgres.sh recovery settings: end/d' "$conf")
    printf '%s\n' "$kept" >"$conf" # in place: owner and mode stay the server's
}

restore_pitr() {
    local shown="" sessions="" major archive reason stopped_ns copied=0 segment line
    PGDATA=${VELOZ_PGDATA:-}
    if [ -z "$PGDATA" ] && [[ $url =~ ^postgres(ql)?:// ]]; then
        # The running server knows (superusers and pg_read_all_settings may ask).
        pg_connection "$url"
        PSQL=$(pg_tool psql)
        if PGDATA=$(pg_query "$PG_URL" "SHOW data_directory") && [ -f "$PGDATA/PG_VERSION" ]; then
            log "data directory (from the server): $PGDATA"
        else
            PGDATA=""
        fi
    fi
    [ -n "$PGDATA" ] || die $EXIT_USAGE "VELOZ_PGDATA is not set: the data directory of the cluster to restore (e.g. /var/lib/postgresql/15/main)"
    PGDATA=$(realpath -m -- "$PGDATA")
    [ -d "$(dirname "$PGDATA")" ] || die $EXIT_USAGE "VELOZ_PGDATA=$PGDATA: its parent directory does not exist"
    if [ -d "$PGDATA" ] && [ ! -f "$PGDATA/postgresql.conf" ] && [ -z "${VELOZ_PG_SERVICE:-}" ] \
        && [ -z "${VELOZ_PG_CTL_OPTIONS:-}" ]; then
        die $EXIT_USAGE "$PGDATA has no postgresql.conf (Debian keeps it in /etc/postgresql/<version>/<cluster>/): set VELOZ_PG_SERVICE (e.g. postgresql@15-main) so the cluster is stopped and started the way it is configured"
    fi

    archive="$VELOZ_BACKUP_DIR/postgres/wal_archive"
    [ -d "$archive" ] || die $EXIT_USAGE "no WAL archive at $archive"
    case $archive in *[\'\"%]*) die $EXIT_USAGE "the WAL archive path $archive contains a quote or %" ;; esac

    if [ -z "$backup" ]; then
        backup=$(newest_backup "$VELOZ_BACKUP_DIR/postgres/base" finished_before_target)
        if [ -z "$backup" ]; then
            [ -n "$target" ] || die $EXIT_FAILED "no complete base backup under $VELOZ_BACKUP_DIR/postgres/base"
            die $EXIT_FAILED "no complete base backup under $VELOZ_BACKUP_DIR/postgres/base finished before $TARGET_PG (backup_postgres.sh -t base takes one)"
        fi
    fi
    backup=$(cd "$backup" 2>/dev/null && pwd) || die $EXIT_USAGE "no backup directory $backup"
    verify_backup_dir "$backup" base.tar.gz
    finished_before_target "$backup" \
        || die $EXIT_FAILED "$backup finished at $(info_value "$backup" finished_at), not before $TARGET_PG: it cannot be rolled forward to -T"
    if [ "$(find "$backup" -maxdepth 1 -name '*.tar.gz' | wc -l)" -gt 1 ]; then
        die $EXIT_FAILED "$backup holds tablespaces: restore them by hand (docs/operations/postgres-backup.md)"
    fi
    major=$(info_value "$backup" server_version_num)
    [[ $major =~ ^[0-9]+$ ]] || die $EXIT_VERIFY "$backup/info.json has no server_version_num"
    major=$((major / 10000))
    if [ -f "$PGDATA/PG_VERSION" ] && [ "$(cat "$PGDATA/PG_VERSION")" != "$major" ]; then
        die $EXIT_USAGE "$PGDATA is PostgreSQL $(cat "$PGDATA/PG_VERSION"), the backup is $major"
    fi
    PG_SERVER_BIN=/usr/lib/postgresql/$major/bin
    PG_CTL=$(pg_tool pg_ctl)
    PG_CONTROLDATA=$(pg_tool pg_controldata)
    "$PG_CTL" --version | grep -q " $major\." \
        || die $EXIT_USAGE "$PG_CTL is not PostgreSQL $major ($("$PG_CTL" --version)); set VELOZ_PG_BIN"
    PG_OWNER=${VELOZ_PG_USER:-$(stat -c %U "$PGDATA" 2>/dev/null || echo postgres)}
    id -u "$PG_OWNER" >/dev/null 2>&1 || die $EXIT_USAGE "no OS user $PG_OWNER (set VELOZ_PG_USER)"
    if [ "$(id -u)" != 0 ] && [ "$(id -u)" != "$(id -u "$PG_OWNER")" ]; then
        die $EXIT_USAGE "run as root or as $PG_OWNER (the cluster's OS user)"
    fi
    if [ -n "${VELOZ_PG_SERVICE:-}" ] && ! command -v systemctl >/dev/null; then
        die $EXIT_USAGE "VELOZ_PG_SERVICE is set but there is no systemctl"
    fi
    if mountpoint -q -- "$PGDATA" 2>/dev/null; then
        die $EXIT_USAGE "$PGDATA is a mount point and cannot be moved aside: point VELOZ_PGDATA at a directory inside it (initdb there), or move its contents aside by hand"
    fi
    ASIDE="$PGDATA.pre-pitr-$stamp"
    SERVER_LOG="$PGDATA.pitr-$stamp.log"
    [ ! -e "$ASIDE" ] || die $EXIT_FAILED "$ASIDE already exists"
    log "restoring the cluster in $PGDATA from $backup (finished $(info_value "$backup" finished_at)) to ${TARGET_PG:-the end of the WAL archive}"

    if [[ $url =~ ^postgres(ql)?:// ]]; then
        shown=$(redact_url "$url")
        pg_connection "$url"
        PSQL=$(pg_tool psql)
        if [ -f "$PGDATA/postmaster.pid" ]; then
            if sessions=$(pg_query "$PG_URL" "SELECT string_agg(format('%s@%s (pid %s, %s)', usename,
                    datname, pid, coalesce(nullif(application_name, ''), 'no application name')), ', ')
                    FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"); then
                if [ -n "$sessions" ] && ! $force; then
                    die $EXIT_REFUSED "sessions are connected to the cluster: $sessions; stop VeloZ (systemctl stop veloz) and other clients first, or pass --force to disconnect them"
                fi
                [ -z "$sessions" ] || log "--force: disconnecting $sessions"
            else
                log "cannot list sessions through $shown (${sessions%%$'\n'*}): not checked"
            fi
        fi
    fi

    stop_cluster
    if [ -e "$PGDATA" ]; then
        log "moving the data directory aside: $PGDATA -> $ASIDE"
        mv -T -- "$PGDATA" "$ASIDE" \
            || die $EXIT_FAILED "cannot move $PGDATA aside; the cluster is stopped"
    fi
    install -d -m 700 -o "$PG_OWNER" -g "$(id -gn "$PG_OWNER")" -- "$PGDATA" \
        || die $EXIT_FAILED "cannot create $PGDATA"
    log "unpacking $backup/base.tar.gz"
    tar -xzf "$backup/base.tar.gz" -C "$PGDATA" --no-same-owner \
        || die $EXIT_FAILED "cannot unpack $backup/base.tar.gz (the old data directory is $ASIDE)"
    mkdir -p "$PGDATA/pg_wal/archive_status"
    # WAL the server wrote but had not archived yet (the current segment) is only in the
    # old pg_wal: recovery reads the archive first, then these.
    if [ -d "$ASIDE/pg_wal" ]; then
        while IFS= read -r segment; do
            cp -p -- "$segment" "$PGDATA/pg_wal/" && copied=$((copied + 1))
        done < <(find "$ASIDE/pg_wal" -maxdepth 1 -type f -regextype posix-extended \
            -regex '.*/([0-9A-F]{24}|[0-9A-F]{8}\.history)$')
        log "copied $copied WAL files from the old pg_wal"
    fi
    touch "$PGDATA/recovery.signal"
    {
        printf '# restore_postgres.sh recovery settings: begin (%s)\n' "$stamp"
        printf "restore_command = 'cp \"%s/%%f\" \"%%p\"'\n" "$archive"
        if [ -n "$target" ]; then
            printf "recovery_target_time = '%s'\n" "$TARGET_PG"
            printf "recovery_target_inclusive = on\n"
        fi
        printf "recovery_target_action = 'promote'\n"
        printf '# restore_postgres.sh recovery settings: end\n'
    } >>"$PGDATA/postgresql.auto.conf"
    chown -R "$PG_OWNER:$(id -gn "$PG_OWNER")" -- "$PGDATA"
    chmod 700 "$PGDATA"

    start_cluster
    wait_for_recovery
    reason=$(recovery_stop_reason)
    remove_recovery_settings
    log "recovery finished: ${reason:-no new timeline}"
    if [ -n "$target" ]; then
        # "before <time of the first commit after -T>": everything committed up to -T is
        # in, nothing after it.
        stopped_ns=""
        [[ $reason =~ ^before\ ([0-9].*)$ ]] && stopped_ns=$(date -u -d "${BASH_REMATCH[1]}" +%s%N 2>/dev/null)
        if [ -z "$stopped_ns" ] || [ "$stopped_ns" -le "$TARGET_NS" ]; then
            die $EXIT_FAILED "recovery did not stop at -T $TARGET_PG (${reason:-no stop recorded}); the cluster runs as recovered, the old data directory is $ASIDE"
        fi
        log "recovered to $TARGET_PG: the first transaction after it (committed ${reason#before }) is not applied"
    fi
    if [ -n "$shown" ]; then
        line=$(pg_query "$PG_URL" "SELECT (SELECT count(*) FROM orders) || ' orders, projector_state.last_seq '
            || (SELECT max(last_seq) FROM projector_state)") \
            && log "$shown now holds $line"
    fi
    log "done: the old data directory is kept at $ASIDE (remove it when satisfied); take a new base backup (backup_postgres.sh -t base); start VeloZ: it re-projects the journal after the restored projector_state.last_seq"
}

# Our own scratch database (full) is dropped if the script stops before the swap.
scratch_db=""
on_exit() {
    if [ -n "$scratch_db" ]; then
        drop_temp
    fi
}
trap on_exit EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

take_lock
case $kind in
    full) restore_full ;;
    pitr) restore_pitr ;;
esac

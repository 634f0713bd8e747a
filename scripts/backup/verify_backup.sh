#!/usr/bin/env bash
# verify_backup.sh: are the backups there, intact, recent enough, and restorable?
#
# Usage: verify_backup.sh [-t] [-r REPORT] [--help]
#
# Checks under $VELOZ_BACKUP_DIR:
#   - every backup directory's MANIFEST.sha256 against its files (a directory without one
#     is incomplete: reported, ignored by restores);
#   - the age of the newest complete backup of each kind against the disaster-recovery
#     checklist: journal (wal/) under 5 minutes, configuration (config/) under 6 hours,
#     database under 24 hours (history/ for SQLite; postgres/full or postgres/base for
#     PostgreSQL; none for VELOZ_DATABASE_URL=none);
#   - with VELOZ_S3_BUCKET set, the same ages for the newest complete set of each kind
#     in the bucket (the offsite copy).
# -t          also test-restore the newest backups into scratch space: the journal into a
#             scratch directory, `veloz wal verify` and its record count against
#             snapshot.json; the SQLite copy, its rows per table against info.json;
#             PostgreSQL through restore_postgres.sh -t full into a scratch database
#             veloz_verify_<pid> (dropped afterwards), its rows against info.json.
# -r REPORT   also write the report to the file REPORT.
# --help      this text.
#
# The report (one line per check: OK, WARN or FAIL, then RESULT) goes to stdout.
#
# Settings (environment, then VELOZ_ENV_FILE, default /etc/veloz/veloz.env):
#   VELOZ_BACKUP_DIR (/backup), VELOZ_DATABASE_URL, VELOZ_S3_BUCKET (optional),
#   VELOZ_S3_ENDPOINT_URL, AWS_*, VELOZ_BIN, VELOZ_PG_BIN; the age limits in seconds
#   VELOZ_VERIFY_MAX_AGE_WAL (300), VELOZ_VERIFY_MAX_AGE_CONFIG (21600),
#   VELOZ_VERIFY_MAX_AGE_DATABASE (86400).
#
# Exit codes: 0 every check passed; 1 a step could not run; 2 bad usage or setting;
# 4 another verify_backup.sh is running; 5 a check failed (checksum, age, count, restore).
set -euo pipefail
# shellcheck source=scripts/backup/lib.sh
source "$(dirname "$0")/lib.sh"

test_restore=false report_file=""
while [ $# -gt 0 ]; do
    case $1 in
        -h | --help) print_help; exit 0 ;;
        -t) test_restore=true; shift ;;
        -r) [ $# -ge 2 ] || die $EXIT_USAGE "-r needs a file"; report_file=$2; shift 2 ;;
        *) die $EXIT_USAGE "unknown argument '$1' (see --help)" ;;
    esac
done
for name in VELOZ_VERIFY_MAX_AGE_WAL VELOZ_VERIFY_MAX_AGE_CONFIG VELOZ_VERIFY_MAX_AGE_DATABASE; do
    value=${!name:-}
    [ -z "$value" ] || [[ $value =~ ^[1-9][0-9]*$ ]] || die $EXIT_USAGE "$name must be a number of seconds, not '$value'"
done
store=$(history_store_kind)
require_veloz
if [ -n "$report_file" ]; then
    : >"$report_file" || die $EXIT_USAGE "cannot write the report to $report_file"
fi
[ -d "$VELOZ_BACKUP_DIR" ] || die $EXIT_USAGE "no backup directory at $VELOZ_BACKUP_DIR"
take_lock

pg_admin_url() { # URL ARGS: psql on URL, its password (if any) through PGPASSWORD
    local url=$1 psql=psql password
    shift
    [ -z "${VELOZ_PG_BIN:-}" ] || psql=$VELOZ_PG_BIN/psql
    if [[ $url =~ ^(postgres(ql)?://)([^:/@?#]*):([^@/?#]*)@(.*)$ ]]; then
        password=${BASH_REMATCH[4]}
        url="${BASH_REMATCH[1]}${BASH_REMATCH[3]}@${BASH_REMATCH[5]}"
        PGPASSWORD=$(printf '%b' "${password//%/\\x}") "$psql" -X -q -w -d "$url" "$@"
    else
        "$psql" -X -q -w -d "$url" "$@"
    fi
}
drop_scratch_db() {
    local base=${VELOZ_DATABASE_URL%%\?*}
    pg_admin_url "${base%/*}/postgres" -c "DROP DATABASE IF EXISTS $scratch_db" >/dev/null 2>&1 \
        || log "could not drop the scratch database $scratch_db: drop it by hand"
}

scratch=$(mktemp -d "${TMPDIR:-/tmp}/veloz-verify.XXXXXX")
scratch_db=""
cleanup() {
    rm -rf -- "$scratch"
    [ -z "$scratch_db" ] || drop_scratch_db
}
trap cleanup EXIT

checks=0 failures=0
report() { # STATUS WHAT...
    local line
    line=$(printf '%-4s %s' "$1" "${*:2}")
    printf '%s\n' "$line"
    [ -z "$report_file" ] || printf '%s\n' "$line" >>"$report_file"
    [ "$1" = RESULT ] || checks=$((checks + 1))
    [ "$1" != FAIL ] || failures=$((failures + 1))
}

stamp_seconds() { # 20261129T031500Z -> seconds since the epoch
    local s=$1
    date -u -d "${s:0:4}-${s:4:2}-${s:6:2} ${s:9:2}:${s:11:2}:${s:13:2}" +%s 2>/dev/null
}

# Checksums of every backup of KIND (a directory under the backup root).
check_kind() {
    local kind=$1 dir
    [ -d "$VELOZ_BACKUP_DIR/$kind" ] || return 0
    while IFS= read -r dir; do
        if [ ! -f "$dir/MANIFEST.sha256" ]; then
            report WARN "$kind/$(basename "$dir"): incomplete (no MANIFEST.sha256; in progress or failed), ignored by restores"
        elif check_manifest "$dir" >/dev/null 2>&1; then
            report OK "$kind/$(basename "$dir"): checksums match"
        else
            report FAIL "$kind/$(basename "$dir"): checksums do not match: $(cd "$dir" && sha256sum --quiet -c MANIFEST.sha256 2>&1 | head -n 3 | paste -sd ';')"
        fi
    done < <(find "$VELOZ_BACKUP_DIR/$kind" -mindepth 1 -maxdepth 1 -type d -name '[0-9]*T*Z' | LC_ALL=C sort)
}

# The newest complete backup among KINDS is younger than LIMIT seconds.
check_age() {
    local label=$1 limit=$2 newest="" kind set when age
    shift 2
    for kind in "$@"; do
        set=$(complete_sets "$VELOZ_BACKUP_DIR/$kind" | tail -n 1)
        [ -n "$set" ] || continue
        if [ -z "$newest" ] || [[ $(basename "$set") > $(basename "$newest") ]]; then newest=$set; fi
    done
    if [ -z "$newest" ]; then
        report FAIL "$label: no complete backup under $VELOZ_BACKUP_DIR/{$(printf '%s,' "$@" | sed 's/,$//')}"
        return
    fi
    when=$(stamp_seconds "$(basename "$newest")") || when=""
    if [ -z "$when" ]; then
        report FAIL "$label: cannot read the time of $newest"
        return
    fi
    age=$(($(date -u +%s) - when))
    if [ "$age" -lt "$limit" ]; then
        report OK "$label: newest ${newest#"$VELOZ_BACKUP_DIR"/} is ${age}s old (limit ${limit}s)"
    else
        report FAIL "$label: newest ${newest#"$VELOZ_BACKUP_DIR"/} is ${age}s old, over the limit of ${limit}s"
    fi
}

# The newest complete set in S3 among KINDS (a label and age limit as check_age's) is
# younger than LIMIT: the offsite copy is as recent as the checklist asks of the local one.
check_s3() {
    local label=$1 limit=$2 newest="" kind stamp when age
    shift 2
    for kind in "$@"; do
        stamp=$(printf '%s\n' "$S3_LISTING" | awk -v k="$kind" '$1 == k { s = $2 } END { print s }')
        [ -n "$stamp" ] || continue
        if [ -z "$newest" ] || [[ $stamp > ${newest##*/} ]]; then newest=$kind/$stamp; fi
    done
    if [ -z "$newest" ]; then
        report FAIL "S3 $VELOZ_S3_BUCKET: no complete $label backup"
        return
    fi
    when=$(stamp_seconds "${newest##*/}") || when=0
    age=$(($(date -u +%s) - when))
    if [ "$age" -lt "$limit" ]; then
        report OK "S3 $VELOZ_S3_BUCKET: newest $label $newest is ${age}s old (limit ${limit}s)"
    else
        report FAIL "S3 $VELOZ_S3_BUCKET: newest $label $newest is ${age}s old, over the limit of ${limit}s"
    fi
}

json_number() { sed -n "s/^ *\"$2\" *: *\([0-9][0-9]*\).*/\1/p" "$1" 2>/dev/null | head -n 1; }

test_wal() {
    local set records stats entries out
    set=$(complete_sets "$VELOZ_BACKUP_DIR/wal" | tail -n 1)
    [ -n "$set" ] || { report FAIL "test restore journal: no complete backup"; return; }
    mkdir -p "$scratch/wal"
    cp -- "$set"/orders_*.wal "$scratch/wal/" 2>/dev/null || true
    if ! out=$(veloz_cli wal verify --dir "$scratch/wal" 2>&1); then
        report FAIL "test restore journal $(basename "$set"): veloz wal verify: $(printf '%s\n' "$out" | grep -E 'DAMAGED|gap|veloz:' | head -n 2 | paste -sd ';')"
        return
    fi
    stats=$(veloz_cli wal stats --dir "$scratch/wal" --json) || { report FAIL "test restore journal: veloz wal stats failed"; return; }
    entries=$(printf '%s\n' "$stats" | sed -n 's/^  "entries": \([0-9]*\),$/\1/p')
    records=$(json_number "$set/snapshot.json" records)
    if [ "$entries" = "$records" ]; then
        report OK "test restore journal $(basename "$set"): verifies, $entries records as snapshot.json says"
    else
        report FAIL "test restore journal $(basename "$set"): $entries records restored, snapshot.json says ${records:-nothing}"
    fi
}

test_sqlite() {
    local set out
    set=$(complete_sets "$VELOZ_BACKUP_DIR/history" | tail -n 1)
    [ -n "$set" ] || { report FAIL "test restore SQLite history: no complete backup"; return; }
    cp -- "$set/veloz.db" "$scratch/veloz.db" || { report FAIL "test restore SQLite history: cannot copy"; return; }
    if out=$(veloz_cli db counts --url "sqlite:///$scratch/veloz.db" --expect "$set/info.json" 2>&1); then
        report OK "test restore SQLite history $(basename "$set"): ${out#counts match * }, rows as info.json says"
    else
        report FAIL "test restore SQLite history $(basename "$set"): $(printf '%s\n' "$out" | head -n 3 | paste -sd ';')"
    fi
}

test_postgres() {
    local set base query url out
    set=$(complete_sets "$VELOZ_BACKUP_DIR/postgres/full" | tail -n 1)
    [ -n "$set" ] || { report FAIL "test restore PostgreSQL: no complete full backup"; return; }
    scratch_db=veloz_verify_$$
    base=${VELOZ_DATABASE_URL%%\?*}
    query=${VELOZ_DATABASE_URL#"$base"}
    url="${base%/*}/$scratch_db$query"
    if ! out=$("$BACKUP_SCRIPTS/restore_postgres.sh" -t full -f "$set" --url "$url" 2>&1); then
        report FAIL "test restore PostgreSQL $(basename "$set"): restore_postgres.sh: $(printf '%s\n' "$out" | tail -n 1)"
        return
    fi
    if out=$(veloz_cli db counts --url "$url" --expect "$set/info.json" 2>&1); then
        report OK "test restore PostgreSQL $(basename "$set") into $scratch_db: rows as info.json says"
    else
        report FAIL "test restore PostgreSQL $(basename "$set"): $(printf '%s\n' "$out" | head -n 3 | paste -sd ';')"
    fi
}

log "verifying $VELOZ_BACKUP_DIR"
case $store in
    sqlite) db_kinds=(history) ;;
    postgres) db_kinds=(postgres/full postgres/base) ;;
    none) db_kinds=() ;;
esac
for kind in wal config "${db_kinds[@]}"; do check_kind "$kind"; done
check_age "journal (wal)" "${VELOZ_VERIFY_MAX_AGE_WAL:-300}" wal
check_age "configuration (config)" "${VELOZ_VERIFY_MAX_AGE_CONFIG:-21600}" config
if [ ${#db_kinds[@]} -gt 0 ]; then
    check_age "database ($store)" "${VELOZ_VERIFY_MAX_AGE_DATABASE:-86400}" "${db_kinds[@]}"
else
    report OK "database: VELOZ_DATABASE_URL=none, nothing to back up"
fi
if [ -n "${VELOZ_S3_BUCKET:-}" ]; then
    if S3_LISTING=$(veloz_cli backup list 2>&1); then
        check_s3 journal "${VELOZ_VERIFY_MAX_AGE_WAL:-300}" wal
        check_s3 configuration "${VELOZ_VERIFY_MAX_AGE_CONFIG:-21600}" config
        [ ${#db_kinds[@]} -eq 0 ] || check_s3 database "${VELOZ_VERIFY_MAX_AGE_DATABASE:-86400}" "${db_kinds[@]}"
    else
        report FAIL "S3 $VELOZ_S3_BUCKET: cannot list: ${S3_LISTING##*$'
'}"
    fi
fi
if $test_restore; then
    log "test restores into $scratch"
    test_wal
    case $store in
        sqlite) test_sqlite ;;
        postgres) test_postgres ;;
        none) ;;
    esac
fi

if [ "$failures" -gt 0 ]; then
    report RESULT "FAILED: $failures of $checks checks"
    die $EXIT_VERIFY "$failures of $checks checks failed"
fi
report RESULT "PASSED: $checks checks"
log "done: every check passed"

# shellcheck shell=bash disable=SC2034  # sourced: the variables it sets are its callers'
# Shared by scripts/backup/*.sh (sourced, not run): settings, one log line per step, a lock
# against a second run of the same script, manifests, and the exit codes every script
# documents:
#   0 done
#   1 a step failed (the last line names it)
#   2 bad usage or a bad setting
#   3 refused: the engine holds the journal, or the target is in use
#   4 another run of this script holds its lock
#   5 verification failed (checksum, age, count, or a test restore)
# Settings come from the environment, then from VELOZ_ENV_FILE (default
# /etc/veloz/veloz.env, the file the systemd unit reads), so cron runs see the engine's own
# VELOZ_WAL_DIR and VELOZ_DATABASE_URL. Nothing here prints a secret: database URLs are
# logged without their password.

readonly EXIT_FAILED=1 EXIT_USAGE=2 EXIT_REFUSED=3 EXIT_LOCKED=4 EXIT_VERIFY=5
SCRIPT_NAME=$(basename "$0" .sh)
BACKUP_SCRIPTS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
VELOZ_HOME=${VELOZ_HOME:-$(cd "$BACKUP_SCRIPTS/../.." && pwd)}

log() { printf '%s %s: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$SCRIPT_NAME" "$*" >&2; }
die() {
    local code=$1
    shift
    log "FAILED: $*"
    exit "$code"
}

# Read VELOZ_*/AWS_* assignments the environment does not already set from the env file,
# without executing it (it is data, not a script).
load_env_file() {
    local file=${VELOZ_ENV_FILE:-/etc/veloz/veloz.env} line key value
    [ -r "$file" ] || return 0
    while IFS= read -r line || [ -n "$line" ]; do
        line=${line#"${line%%[![:space:]]*}"}
        case $line in '' | '#'*) continue ;; esac
        line=${line#export }
        key=${line%%=*}
        value=${line#*=}
        case $key in VELOZ_* | AWS_* | PG*) ;; *) continue ;; esac
        [[ $key =~ ^[A-Z_][A-Z0-9_]*$ ]] || continue
        value=${value%\"}
        value=${value#\"}
        value=${value%\'}
        value=${value#\'}
        [ -n "${!key+set}" ] || export "$key=$value"
    done <"$file"
}
load_env_file

# The database URL may come as a file (VELOZ_DATABASE_URL_FILE, as in containers and in
# install.sh's secrets): read it once here, and pass the URL alone to what runs below.
if [ -z "${VELOZ_DATABASE_URL:-}" ] && [ -n "${VELOZ_DATABASE_URL_FILE:-}" ]; then
    [ -r "$VELOZ_DATABASE_URL_FILE" ] \
        || die $EXIT_USAGE "VELOZ_DATABASE_URL_FILE: cannot read $VELOZ_DATABASE_URL_FILE"
    VELOZ_DATABASE_URL=$(<"$VELOZ_DATABASE_URL_FILE")
fi
unset VELOZ_DATABASE_URL_FILE

VELOZ_BACKUP_DIR=${VELOZ_BACKUP_DIR:-/backup}
VELOZ_WAL_DIR=${VELOZ_WAL_DIR:-/var/lib/veloz/wal}
VELOZ_DATABASE_URL=${VELOZ_DATABASE_URL:-sqlite:////var/lib/veloz/veloz.db}
VELOZ_CONFIG_DIR=${VELOZ_CONFIG_DIR:-/etc/veloz}
VELOZ_BIN=${VELOZ_BIN:-$VELOZ_HOME/.venv/bin/veloz}
export VELOZ_BACKUP_DIR VELOZ_WAL_DIR VELOZ_DATABASE_URL VELOZ_CONFIG_DIR

# A URL as it may appear in a log: the password replaced by ***.
redact_url() { printf '%s' "$1" | sed -E 's#(://[^:/@]+):[^@]*@#\1:***@#'; }

# One run at a time per script: flock on a file beside the backups (or VELOZ_LOCK_DIR).
take_lock() {
    local dir=${VELOZ_LOCK_DIR:-$VELOZ_BACKUP_DIR}
    mkdir -p "$dir" || die $EXIT_FAILED "cannot create $dir"
    exec 9>"$dir/.$SCRIPT_NAME.lock"
    flock -n 9 || die $EXIT_LOCKED "another $SCRIPT_NAME is running (lock $dir/.$SCRIPT_NAME.lock)"
}

# UTC stamp naming one backup: sorts by time, no characters a shell or S3 key minds.
backup_stamp() { date -u +%Y%m%dT%H%M%SZ; }

require_veloz() {
    [ -x "$VELOZ_BIN" ] || die $EXIT_USAGE "no veloz at $VELOZ_BIN (set VELOZ_BIN or VELOZ_HOME)"
}
veloz_cli() {
    require_veloz
    "$VELOZ_BIN" "$@"
}

# For a script that takes no options: --help, or one line refusing anything else.
only_help() {
    while [ $# -gt 0 ]; do
        case $1 in
            -h | --help) print_help; exit 0 ;;
            *) die $EXIT_USAGE "unknown argument '$1' (see --help)" ;;
        esac
    done
}

# How many backups to keep: the variable NAME's value, or DEFAULT; a positive number.
keep_count() {
    local value=${!1:-$2}
    [[ $value =~ ^[1-9][0-9]*$ ]] || die $EXIT_USAGE "$1 must be a positive number, not '$value'"
    printf '%s\n' "$value"
}

# The kind of history store VELOZ_DATABASE_URL names: sqlite, postgres or none.
history_store_kind() {
    case $VELOZ_DATABASE_URL in
        sqlite:///?*) echo sqlite ;;
        postgres://* | postgresql://*) echo postgres ;;
        none | NONE | None) echo none ;;
        *) die $EXIT_USAGE "VELOZ_DATABASE_URL is neither sqlite:///PATH, postgresql://... nor none: $(redact_url "$VELOZ_DATABASE_URL")" ;;
    esac
}

# The complete backup sets under PARENT (those with their manifest, written last), oldest
# first; and the newest of them.
complete_sets() {
    { find "$1" -mindepth 2 -maxdepth 2 -name MANIFEST.sha256 -printf '%h\n' 2>/dev/null || true; } \
        | LC_ALL=C sort
}
newest_complete() { complete_sets "$1" | tail -n 1; }

# A new backup directory under PARENT named by the UTC time, its path on stdout; a second
# run in the same second waits for the next.
new_backup_dir() {
    local parent=$1 stamp
    mkdir -p "$parent" || die $EXIT_FAILED "cannot create $parent"
    while :; do
        stamp=$(backup_stamp)
        mkdir "$parent/$stamp" 2>/dev/null && break
        [ -d "$parent/$stamp" ] || die $EXIT_FAILED "cannot create $parent/$stamp"
        sleep 1
    done
    printf '%s\n' "$parent/$stamp"
}

# DIR to VELOZ_S3_BUCKET when one is set (manifest last); 1 if the upload fails.
upload_if_configured() {
    local dir=$1 summary
    [ -n "${VELOZ_S3_BUCKET:-}" ] || return 0
    log "upload $dir to $VELOZ_S3_BUCKET"
    summary=$(veloz_cli backup upload "$dir") || return 1
    log "$summary"
}

# Remove the complete sets under PARENT beyond the newest KEEP.
prune_backups() {
    local old
    complete_sets "$1" | head -n -"$2" | while IFS= read -r old; do
        log "removing $old (beyond the newest $2)"
        rm -rf -- "$old"
    done
}

# An EXIT trap's part: after a failure, the backup being written ($out, no manifest yet)
# is removed; a complete one (manifest written last) never is.
remove_incomplete_backup() {
    if [ "$1" -ne 0 ] && [ -n "${out:-}" ] && [ -d "$out" ] && [ ! -f "$out/MANIFEST.sha256" ]; then
        rm -rf -- "$out"
    fi
}

# MANIFEST.sha256 in DIR: sha256sum lines for every file below it, relative paths.
write_manifest() {
    # shellcheck disable=SC2094  # the list excludes the file being written
    (cd "$1" && find . -type f ! -name MANIFEST.sha256 ! -name .MANIFEST.partial -printf '%P\n' \
        | LC_ALL=C sort | xargs -r -d '\n' sha256sum >.MANIFEST.partial \
        && mv .MANIFEST.partial MANIFEST.sha256)
}
check_manifest() {
    [ -f "$1/MANIFEST.sha256" ] || return 1
    (cd "$1" && sha256sum --quiet --strict -c MANIFEST.sha256)
}

# --help prints the script's leading comment block (after the shebang).
print_help() { sed -n '2,/^[^#]/{/^#/{s/^# \{0,1\}//;p}}' "$0"; }

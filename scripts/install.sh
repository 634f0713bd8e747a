#!/usr/bin/env bash
# Install VeloZ on a systemd host, or upgrade it in place (run it again: it is idempotent).
#
# Usage: scripts/install.sh [--root DIR] [--python PATH] [--no-venv] [--with-nginx]
#        scripts/install.sh --help
#
# Run as root from a checkout or an unpacked release: /opt/veloz itself may be that
# checkout (git checkout v0.2.0 && /opt/veloz/scripts/install.sh), or it is copied there.
# It lays out:
#   user and group veloz   system user, home /var/lib/veloz, no login shell; also recorded
#                          in /usr/lib/sysusers.d/veloz.conf
#   /opt/veloz             the code (src, scripts, config, docs, deploy), owned by root, and
#                          its venv /opt/veloz/.venv (pip with requirements.lock as
#                          constraints, as scripts/bootstrap.sh); /usr/local/bin/veloz links
#                          to /opt/veloz/.venv/bin/veloz
#   /var/lib/veloz/wal     the journal (veloz, 750); /var/lib/veloz holds the SQLite history
#   /var/log/veloz         logs (veloz, 750)
#   $VELOZ_BACKUP_DIR      backups (default /backup; created 750 veloz if missing)
#   /etc/veloz             (root:veloz, 750) veloz.env, a commented template of the release
#                          settings; risk_limits.yaml from config/; tls/ for nginx's
#                          certificate; jwt_secret and admin_password, random, made once
#   /etc/systemd/system/veloz.service and /etc/logrotate.d/veloz from deploy/
#   /etc/nginx/conf.d/veloz.conf (only with --with-nginx; set server_name in it)
# An operator's files are never overwritten: when the release's veloz.env,
# risk_limits.yaml or nginx site differ from the installed one, the release's version is
# written beside it as <name>.new and the installed one is kept. The unit, the logrotate
# file and the code are the release's own and are replaced (local unit changes belong in
# a drop-in: systemctl edit veloz). Secrets are never printed.
# It does not start anything; then: systemctl enable --now veloz.
#
# Options:
#   --root DIR     install everything under DIR instead of / (tests, image staging): no
#                  user is created and nothing is chowned (the user stays recorded in
#                  DIR/usr/lib/sysusers.d/veloz.conf; `systemd-sysusers --root=DIR`
#                  creates it there), systemd is not reloaded. The venv under DIR works
#                  from that path only (a venv cannot be moved).
#   --python PATH  the Python 3.11 or 3.12 the venv is made with (default: python3)
#   --no-venv      lay out files only; leave /opt/veloz/.venv as it is (or absent)
#   --with-nginx   also install deploy/nginx/veloz.conf as /etc/nginx/conf.d/veloz.conf
#   -h, --help     this text
#
# Settings read: VELOZ_BACKUP_DIR (environment first, then the installed veloz.env).
# One log line per step on stderr. Exit codes:
#   0 installed (or already up to date)
#   1 a step failed (the last line names it)
#   2 bad usage or setting (unknown option, not root without --root, no suitable Python
#     or no venv module: Debian's python3-venv)
#   3 refused: the engine (veloz_engine) is running and the code or venv would change;
#     stop it first (systemctl stop veloz)
#   4 another install is running
set -euo pipefail
set -o errtrace
shopt -s inherit_errexit

root="" python=python3 with_venv=1 with_nginx=0 want_help=0 usage_error=""
while [ $# -gt 0 ]; do
    case $1 in
        --root) [ $# -ge 2 ] || { usage_error="--root needs a directory" && break; }
            root=$2 && shift ;;
        --root=*) root=${1#--root=} ;;
        --python) [ $# -ge 2 ] || { usage_error="--python needs a path" && break; }
            python=$2 && shift ;;
        --python=*) python=${1#--python=} ;;
        --no-venv) with_venv=0 ;;
        --with-nginx) with_nginx=1 ;;
        -h | --help) want_help=1 ;;
        *) usage_error="unknown option: $1" && break ;;
    esac
    shift
done

if [ -n "$root" ]; then
    mkdir -p -- "$root"
    root=$(cd -- "$root" && pwd)
    [ "$root" != / ] || root=""
fi
# The installed env file (under --root: that root's) is what lib.sh reads settings from.
export VELOZ_ENV_FILE="$root/etc/veloz/veloz.env"
# shellcheck source=SCRIPTDIR/backup/lib.sh
source "$(dirname "$0")/backup/lib.sh"

if [ "$want_help" = 1 ]; then
    print_help
    exit 0
fi
[ -z "$usage_error" ] || die "$EXIT_USAGE" "$usage_error (see --help)"

step="start"
trap 'die "$EXIT_FAILED" "step $step failed (line $LINENO)"' ERR

src=$(cd "$(dirname "$0")/.." && pwd)
home="$root/opt/veloz"
etc="$root/etc/veloz"
real=1 # installing into / as root: create the user, chown, reload systemd
if [ -n "$root" ]; then
    real=0
elif [ "$(id -u)" != 0 ]; then
    die "$EXIT_USAGE" "run as root (or install into a scratch root with --root DIR)"
fi
CODE_ITEMS=(src scripts config docs deploy pyproject.toml requirements.lock README.md CHANGELOG.md)

# mkdir with mode and owner (owner only for a real install).
put_dir() {
    local mode=$1 owner=$2 dir=$3
    mkdir -p -- "$dir"
    chmod "$mode" -- "$dir"
    if [ "$real" = 1 ]; then chown "$owner" -- "$dir"; fi
}

# The engine running from this install? Changing its code under it is refused.
refuse_if_running() {
    [ "$real" = 1 ] || return 0
    local pids
    if pids=$(pgrep -x veloz_engine); then
        die "$EXIT_REFUSED" "$1, but the engine is running (pid $(echo "$pids" | tr '\n' ' ')):" \
            "stop it first (systemctl stop veloz)"
    fi
}

# A configuration file the operator may edit: created when missing, else left alone and the
# release's version written beside it as .new when they differ. Prints what it did.
put_config() {
    local from=$1 to=$2 mode=$3
    if [ ! -e "$to" ]; then
        install -m "$mode" -- "$from" "$to"
        if [ "$real" = 1 ]; then chown root:veloz -- "$to"; fi
        printf 'created %s' "${to#"$root"}"
    elif cmp -s -- "$from" "$to"; then
        rm -f -- "$to.new"
        printf '%s unchanged' "${to#"$root"}"
    else
        if ! cmp -s -- "$from" "$to.new"; then
            install -m "$mode" -- "$from" "$to.new"
            if [ "$real" = 1 ]; then chown root:veloz -- "$to.new"; fi
        fi
        printf 'kept your %s (the release'"'"'s is %s.new)' "${to#"$root"}" "${to#"$root"}"
    fi
}

# A file that is the release's own (unit, logrotate): replaced when it differs.
put_owned() {
    local from=$1 to=$2
    if cmp -s -- "$from" "$to"; then
        printf '%s unchanged' "${to#"$root"}"
    else
        install -D -m 644 -- "$from" "$to"
        printf 'installed %s' "${to#"$root"}"
    fi
}

env_template() {
    cat <<'EOF'
# VeloZ settings for the systemd unit (EnvironmentFile=/etc/veloz/veloz.env), written by
# scripts/install.sh. One VAR=value per line, no quotes needed, no shell expansion; a value
# here overrides the unit's own defaults. scripts/install.sh never overwrites this file:
# a newer template appears beside it as veloz.env.new. Every variable:
# /opt/veloz/docs/operations/README.md and /opt/veloz/docs/operations/install.md.
# `systemctl restart veloz` applies a change (the risk limits file reloads by itself).

# release: authentication on, /etc/veloz/risk_limits.yaml.
VELOZ_PRESET=release
VELOZ_WAL_DIR=/var/lib/veloz/wal
VELOZ_DATABASE_URL=sqlite:////var/lib/veloz/veloz.db
# PostgreSQL instead (a password: put the whole URL in a file, 640 root:veloz, and name it
# with VELOZ_DATABASE_URL_FILE=/etc/veloz/database_url instead of this line):
#VELOZ_DATABASE_URL=postgresql://veloz@db.internal:5432/veloz
VELOZ_RISK_LIMITS_FILE=/etc/veloz/risk_limits.yaml
VELOZ_BACKUP_DIR=/backup
#VELOZ_S3_BUCKET=s3://veloz-backups/prod
#VELOZ_S3_ENDPOINT_URL=https://s3.example.com
# PITR of a PostgreSQL history store (scripts/backup/restore_postgres.sh -t pitr): the
# cluster's data directory and its systemd unit (Debian's names for PostgreSQL 15)
#VELOZ_PGDATA=/var/lib/postgresql/15/main
#VELOZ_PG_SERVICE=postgresql@15-main

# Secrets come from files (made once by install.sh, mode 640 root:veloz), never from this
# file's text, so that a copy of it (backups, tickets) shows none.
VELOZ_JWT_SECRET_FILE=/etc/veloz/jwt_secret
# The bootstrap user `admin` gets this password (log in, then create users and keys).
VELOZ_ADMIN_PASSWORD_FILE=/etc/veloz/admin_password

# Listen address. Behind nginx (deploy/nginx/veloz.conf) keep the engine on loopback and
# trust nginx's X-Forwarded-For:
#VELOZ_HOST=127.0.0.1
#VELOZ_TRUSTED_PROXIES=127.0.0.1
#VELOZ_PORT=8080

# Logs: JSON lines on stdout (the journal: journalctl -u veloz) and, with VELOZ_LOG_DIR,
# the same lines in /var/log/veloz/veloz.log as well (rotated by /etc/logrotate.d/veloz).
VELOZ_LOG_DIR=/var/log/veloz
#VELOZ_LOG_LEVEL=info

# Market data and execution (sim by default). Binance keys from files too:
#VELOZ_MARKET_SOURCE=binance_ws
#VELOZ_MARKET_SYMBOL=BTCUSDT,ETHUSDT
#VELOZ_EXECUTION_MODE=binance_testnet_spot
#VELOZ_BINANCE_API_KEY_FILE=/etc/veloz/binance_api_key
#VELOZ_BINANCE_API_SECRET_FILE=/etc/veloz/binance_api_secret
#VELOZ_AUTO_CANCEL_ORPHANED=false

# Limits and performance (defaults shown).
#VELOZ_ORDER_RATE_LIMIT=10
#VELOZ_WORKER_THREADS=4
#VELOZ_MEMORY_POOL_SIZE=1073741824
#VELOZ_MAX_BODY_BYTES=65536
#VELOZ_WAL_MAX_SIZE=67108864
#VELOZ_WAL_MAX_FILES=10
#VELOZ_WAL_SYNC=true
#VELOZ_WAL_CHECKPOINT_INTERVAL=1000
EOF
}

random_hex() { od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'; }

take_lock_at() {
    mkdir -p -- "$1"
    exec 8>>"$1/.install.lock"
    flock -n 8 || die "$EXIT_LOCKED" "another install is running (lock ${1#"$root"}/.install.lock)"
}

step="lock"
take_lock_at "$root/var/lib/veloz"
log "installing $src into ${root:-/}"

step="python"
if [ "$with_venv" = 1 ]; then
    if ! command -v "$python" >/dev/null 2>&1 \
        || ! "$python" -c 'import sys; sys.exit(not (3, 11) <= sys.version_info[:2] < (3, 13))'; then
        die "$EXIT_USAGE" "Python 3.11 or 3.12 is required: $python is not (use --python PATH)"
    fi
    if ! "$python" -c 'import ensurepip, venv' >/dev/null 2>&1; then
        die "$EXIT_USAGE" "$python cannot make a venv (Debian: apt-get install python3-venv)"
    fi
    log "python: $("$python" -c 'import sys; print(sys.executable, sys.version.split()[0])')"
else
    log "python: not needed (--no-venv)"
fi

step="user"
sysusers=$(mktemp)
printf '%s\n' '# The VeloZ service user (scripts/install.sh); systemd-sysusers creates it.' \
    'u veloz - "VeloZ trading engine" /var/lib/veloz /usr/sbin/nologin' >"$sysusers"
put_owned "$sysusers" "$root/usr/lib/sysusers.d/veloz.conf" >/dev/null
rm -f -- "$sysusers"
if [ "$real" = 0 ]; then
    log "user: not created under --root (recorded in /usr/lib/sysusers.d/veloz.conf)"
elif getent passwd veloz >/dev/null; then
    log "user: veloz exists"
else
    useradd --system --user-group --home-dir /var/lib/veloz --no-create-home \
        --shell /usr/sbin/nologin --comment "VeloZ trading engine" veloz
    log "user: created system user veloz"
fi

step="directories"
put_dir 755 root:root "$home"
put_dir 750 root:veloz "$etc"
put_dir 750 root:veloz "$etc/tls"
put_dir 750 veloz:veloz "$root/var/lib/veloz"
put_dir 750 veloz:veloz "$root/var/lib/veloz/wal"
put_dir 750 veloz:veloz "$root/var/log/veloz"
backup_dir="$root$VELOZ_BACKUP_DIR"
if [ ! -d "$backup_dir" ]; then
    put_dir 750 veloz:veloz "$backup_dir"
fi
log "directories: /opt/veloz /etc/veloz /var/lib/veloz/wal /var/log/veloz $VELOZ_BACKUP_DIR in place"

step="code"
stage=$(mktemp -d "$root/opt/.veloz-stage.XXXXXX")
trap 'rm -rf -- "$stage"' EXIT
present=()
changed=()
if [ "$src" -ef "$home" ]; then
    # Run from /opt/veloz itself (a git checkout: git checkout v0.2.0 && scripts/install.sh).
    log "code: installing from /opt/veloz itself, nothing to copy"
else
    for item in "${CODE_ITEMS[@]}"; do
        if [ -e "$src/$item" ]; then present+=("$item"); fi
    done
    (umask 022 && tar -C "$src" --exclude=__pycache__ --exclude='*.pyc' --exclude='*.egg-info' \
        -cf - "${present[@]}" | tar -C "$stage" --no-same-owner -xf -)
    for item in "${present[@]}"; do
        if ! diff -rq -- "$stage/$item" "$home/$item" >/dev/null 2>&1; then changed+=("$item"); fi
    done
    if [ ${#changed[@]} -eq 0 ]; then
        log "code: /opt/veloz unchanged"
    else
        refuse_if_running "the code in /opt/veloz would change"
        for item in "${changed[@]}"; do
            rm -rf -- "$home/$item.old"
            if [ -e "$home/$item" ]; then mv -- "$home/$item" "$home/$item.old"; fi
            mv -- "$stage/$item" "$home/$item"
            rm -rf -- "$home/$item.old"
        done
        if [ "$real" = 1 ]; then chown -R root:root -- "${changed[@]/#/$home/}"; fi
        log "code: updated ${changed[*]} in /opt/veloz"
    fi
fi

step="venv"
venv="$home/.venv"
if [ "$with_venv" = 0 ]; then
    log "venv: skipped (--no-venv)"
else
    wanted=$(
        cd "$home"
        "$python" -c 'import sys; print(sys.version)'
        cat pyproject.toml requirements.lock
        find src -type f ! -name '*.pyc' -print0 | LC_ALL=C sort -z | xargs -0 sha256sum
    )
    wanted=$(printf '%s' "$wanted" | sha256sum | cut -d' ' -f1)
    stamp="$venv/.veloz-install"
    if [ "$(cat "$stamp" 2>/dev/null)" = "$wanted" ] && "$venv/bin/veloz" --help >/dev/null 2>&1; then
        log "venv: /opt/veloz/.venv up to date"
    else
        refuse_if_running "the venv /opt/veloz/.venv would change"
        if ! "$venv/bin/python" -c 'import sys' >/dev/null 2>&1; then
            "$python" -m venv --clear "$venv"
        fi
        # pip builds VeloZ from a scratch copy, so /opt/veloz stays as shipped.
        build=$(mktemp -d)
        trap 'rm -rf -- "$stage" "$build"' EXIT
        cp -r -- "$home/src" "$home/pyproject.toml" "$home/README.md" "$home/requirements.lock" "$build/"
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
            --constraint "$build/requirements.lock" "$build"
        "$venv/bin/veloz" --help >/dev/null
        echo "$wanted" >"$stamp"
        log "venv: installed VeloZ and its locked dependencies into /opt/veloz/.venv"
    fi
fi
mkdir -p -- "$root/usr/local/bin"
link="$root/usr/local/bin/veloz"
if [ "$(readlink -- "$link" 2>/dev/null)" != /opt/veloz/.venv/bin/veloz ] \
    && { [ -L "$link" ] || [ ! -e "$link" ]; }; then
    ln -sfn /opt/veloz/.venv/bin/veloz "$link"
fi

step="config"
template="$stage/veloz.env"
env_template >"$template"
done_env=$(put_config "$template" "$etc/veloz.env" 640)
done_risk=$(put_config "$home/config/risk_limits.yaml" "$etc/risk_limits.yaml" 640)
log "config: $done_env; $done_risk"

step="secrets"
made=()
for name in jwt_secret admin_password; do
    if [ ! -e "$etc/$name" ]; then
        (umask 077 && random_hex 32 >"$etc/$name")
        chmod 640 -- "$etc/$name"
        if [ "$real" = 1 ]; then chown root:veloz -- "$etc/$name"; fi
        made+=("/etc/veloz/$name")
    fi
done
if [ ${#made[@]} -eq 0 ]; then
    log "secrets: /etc/veloz/jwt_secret and admin_password kept"
else
    log "secrets: made ${made[*]} (random, mode 640; not shown)"
fi

step="units"
done_unit=$(put_owned "$home/deploy/systemd/veloz.service" "$root/etc/systemd/system/veloz.service")
done_rotate=$(put_owned "$home/deploy/logrotate/veloz" "$root/etc/logrotate.d/veloz")
log "units: $done_unit; $done_rotate"
if [ "$with_nginx" = 1 ]; then
    mkdir -p -- "$root/etc/nginx/conf.d"
    log "nginx: $(put_config "$home/deploy/nginx/veloz.conf" "$root/etc/nginx/conf.d/veloz.conf" 644)"
fi
if [ "$real" = 1 ] && [ -d /run/systemd/system ]; then
    systemctl daemon-reload
    log "systemd: reloaded"
fi

step="done"
log "done: next, systemctl enable --now veloz (then: systemctl status veloz)"

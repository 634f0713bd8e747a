# shellcheck shell=bash disable=SC2034  # sourced: the variables it sets are its callers'
# Shared by backup_postgres.sh and restore_postgres.sh (sourced after lib.sh): finding the
# PostgreSQL tools, taking a URL apart without ever putting its password on a command
# line (it goes to PGPASSWORD), quoting SQL, and one query's unaligned answer.

# The path of a PostgreSQL tool: VELOZ_PG_BIN, then the server's own bin directory
# (PG_SERVER_BIN, once known), then PATH.
pg_tool() {
    local name=$1 dir
    for dir in "${VELOZ_PG_BIN:-}" "${PG_SERVER_BIN:-}"; do
        if [ -n "$dir" ] && [ -x "$dir/$name" ]; then
            printf '%s\n' "$dir/$name"
            return
        fi
    done
    command -v "$name" 2>/dev/null \
        || die "$EXIT_USAGE" "$name not found (install Debian's postgresql-15 / postgresql-client-15, or set VELOZ_PG_BIN)"
}

url_decode() {
    local s=${1//+/ }
    printf '%b' "${s//%/\\x}"
}

# Check URL is postgresql://; set PG_URL to it without its password (which goes to
# PGPASSWORD), PG_DBNAME to its database and PG_URL_PARTS to what surrounds the database.
pg_connection() {
    local url=$1
    [[ $url =~ ^postgres(ql)?:// ]] \
        || die "$EXIT_USAGE" "not a PostgreSQL URL: $(redact_url "$url") (expected postgresql://user@host/db)"
    if [[ $url =~ ^(postgres(ql)?://)([^:/@?#]*):([^@/?#]*)@(.*)$ ]]; then
        PGPASSWORD=$(url_decode "${BASH_REMATCH[4]}")
        export PGPASSWORD
        url="${BASH_REMATCH[1]}${BASH_REMATCH[3]}@${BASH_REMATCH[5]}"
    fi
    PG_URL=$url
    [[ $url =~ ^(postgres(ql)?://[^/?#]*)(/([^?#]*))?(.*)$ ]]
    PG_URL_HEAD=${BASH_REMATCH[1]}
    PG_DBNAME=$(url_decode "${BASH_REMATCH[4]}")
    PG_URL_TAIL=${BASH_REMATCH[5]}
}

# The connection URL for another database on the same server.
url_for_db() {
    local name=$1 encoded="" i c
    for ((i = 0; i < ${#name}; i++)); do
        c=${name:i:1}
        case $c in [a-zA-Z0-9._~-]) encoded+=$c ;; *) encoded+=$(printf '%%%02X' "'$c") ;; esac
    done
    printf '%s/%s%s\n' "$PG_URL_HEAD" "$encoded" "$PG_URL_TAIL"
}

sql_literal() { printf "'%s'" "${1//\'/\'\'}"; }
sql_ident() { printf '"%s"' "${1//\"/\"\"}"; }

pg_query() {
    local url=$1 sql=$2
    "$PSQL" -X -A -t -q -w -v ON_ERROR_STOP=1 -d "$url" -c "$sql" 2>&1
}

#!/usr/bin/env bash
# backup_config.sh: a copy of the engine's configuration directory.
#
# Usage: backup_config.sh [--help]
#
# Copies VELOZ_CONFIG_DIR (default /etc/veloz: veloz.env, risk_limits.yaml, tls/...) to
# $VELOZ_BACKUP_DIR/config/<stamp>/ with modes, owners (when run as root) and times kept,
# then MANIFEST.sha256 (written last). Nothing of the files' contents is printed (the env
# file holds secrets); $VELOZ_BACKUP_DIR/config is created readable by its owner only. Uploaded to
# VELOZ_S3_BUCKET when that is set; complete copies beyond the newest
# VELOZ_BACKUP_KEEP_CONFIG (default 28: a week at every 6 hours) are removed.
#
# Settings (environment, then VELOZ_ENV_FILE, default /etc/veloz/veloz.env):
#   VELOZ_CONFIG_DIR, VELOZ_BACKUP_DIR (/backup), VELOZ_BACKUP_KEEP_CONFIG,
#   VELOZ_S3_BUCKET (optional), VELOZ_S3_ENDPOINT_URL, AWS_*, VELOZ_BIN.
#
# Exit codes: 0 done; 1 a step failed (the last line names it); 2 bad usage or setting;
# 4 another backup_config.sh is running.
set -euo pipefail
# shellcheck source=scripts/backup/lib.sh
source "$(dirname "$0")/lib.sh"
umask 077

only_help "$@"
keep=$(keep_count VELOZ_BACKUP_KEEP_CONFIG 28)
[ -d "$VELOZ_CONFIG_DIR" ] || die $EXIT_USAGE "no configuration directory at $VELOZ_CONFIG_DIR (set VELOZ_CONFIG_DIR)"
require_veloz
take_lock

out=""
trap 'remove_incomplete_backup $?' EXIT

parent=$VELOZ_BACKUP_DIR/config
out=$(new_backup_dir "$parent")

log "copying $VELOZ_CONFIG_DIR into $out"
# Errors name files, never contents; a file we cannot read fails the backup.
cp -a -- "$VELOZ_CONFIG_DIR/." "$out/" || die $EXIT_FAILED "cannot copy $VELOZ_CONFIG_DIR"
write_manifest "$out" || die $EXIT_FAILED "cannot write $out/MANIFEST.sha256"
log "$(find "$out" -type f ! -name MANIFEST.sha256 | wc -l) files copied"

upload_if_configured "$out" || die $EXIT_FAILED "upload of $out to $VELOZ_S3_BUCKET failed"
prune_backups "$parent" "$keep"
log "done: $out"
printf '%s\n' "$out"

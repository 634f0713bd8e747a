"""Backups of what the engine keeps beside its journal: the SQLite history store's online
copy, row counts to check a restore against, and the S3 copies of backup directories
(scripts/backup/*.sh call these through `veloz db backup|counts` and `veloz backup`)."""

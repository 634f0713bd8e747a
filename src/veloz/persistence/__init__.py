"""History stores (SQLite by default, PostgreSQL in production), their SQL migrations per
dialect, and the projector that feeds them write-behind from the journal. Nothing here is
on the order acknowledgement path."""

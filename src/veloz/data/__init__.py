"""Market data kept on disk for research: bar files read into one exact form
(`formats`), checked for holes (`continuity`), stored as Parquet under VELOZ_DATA_DIR
(`store`) and fetched from Binance's REST API (`download`). See docs/data.md."""

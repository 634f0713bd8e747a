"""The `veloz` command. Heavy modules are imported inside commands so `--help` is quick."""

"""`python -m veloz` runs the `veloz` command."""

from veloz.cli.main import main

main()

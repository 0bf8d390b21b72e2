"""``python -m connector`` runs the command-line interface."""

from connector.cli import main

# Guarded: the intake's worker processes are spawned and import the main module again.
if __name__ == "__main__":
    raise SystemExit(main())

"""``python -m connector`` runs the command-line interface."""

from connector.cli import main

raise SystemExit(main())

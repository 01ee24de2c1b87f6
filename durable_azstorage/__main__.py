"""``python -m durable_azstorage`` runs the command line."""

from __future__ import annotations

from durable_azstorage.cli.app import main

if __name__ == "__main__":
    main()

"""`python -m vaihde` is the `vaihde` command."""

from vaihde.cli import main

raise SystemExit(main())

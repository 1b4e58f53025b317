"""Allow ``python -m daiban``."""

from daiban.cli import main

raise SystemExit(main())

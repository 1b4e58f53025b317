"""The node: local store, domain rules, catalog and the application lifecycle.

Never imports textual or aiohttp: the CLI, the TUI and the sync server all call
into here, and ``daiban --help`` stays fast."""

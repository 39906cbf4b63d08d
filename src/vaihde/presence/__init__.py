"""Employees' availability: the pure model and precedence rule (model), the database (store),
the in-memory cache for routing and the console (cache), and the CLI (commands); see
docs/presence.md.
"""

"""Users, roles, API tokens and web sessions: who may use vaihde's REST API and web console.

`model` (roles, Principal, permission checks; pure), `passwords` (argon2id), `store` (the
database), `middleware` (aiohttp), `commands` (`vaihde user …`, `vaihde token …`).
"""

"""The browser pages of the service: login, the operator console and the admin editor (plain
HTML/CSS/JS under static/, no build step), served by the service's aiohttp app (`add_web`).
"""

from vaihde.web.pages import add_web

__all__ = ["add_web"]

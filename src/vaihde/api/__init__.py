"""The REST API (/api/v1): JSON over aiohttp with an OpenAPI 3.1 document, authenticated by
API tokens or web-console sessions (vaihde.auth). `make_api(ApiContext(...))` builds it.
"""

from vaihde.api.app import ApiContext, LiveDirectory, make_api

__all__ = ["ApiContext", "LiveDirectory", "make_api"]

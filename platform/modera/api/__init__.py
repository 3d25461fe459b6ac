"""The HTTP edge's shared pieces: request parsing with limits, and typed errors mapped to status codes.

Serve apps use these; analyzers, models and the policy engine never import them.
"""


class RootWithoutSlash:
    """ASGI middleware: a request for an app's route prefix itself ("/v1/text") reaches its "/" route.

    Without it, Starlette answers "/v1/text" with a 307 redirect to "/v1/text/", which costs every
    client a second round trip (and some clients do not repeat a POST body after a redirect).
    """

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        root = scope.get("root_path", "")
        if scope["type"] == "http" and root and scope["path"] in (root, ""):
            # In place, not a copy: outer middleware (metrics) reads the route the router records in this scope.
            scope["path"], scope["raw_path"] = root + "/", (root + "/").encode()
        await self.app(scope, receive, send)

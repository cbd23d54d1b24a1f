"""The web chat page for people and the admin view for operators, served by the functions app.

Plain HTML, CSS and JavaScript modules under ``static/``: nothing to build, nothing fetched
from outside. The pages are public (they hold no data); everything they show comes from the
API with the bearer token the person signed in with.
"""

from functions.web.routes import PUBLIC_PATHS, ROUTES

__all__ = ["PUBLIC_PATHS", "ROUTES"]

"""Static files of the console when nothing in front of the web process serves them.

`bin/up` and the container run plain daphne, which (unlike `runserver`) serves no static files,
so without this the console would come without its stylesheet, htmx and charts. Only files the
staticfiles finders know (the apps' ``static/`` directories) are served, with ``Last-Modified``
and a cache lifetime; a proxy or CDN in front can take over ``STATIC_URL`` at any time.
"""
from __future__ import annotations

import posixpath
from pathlib import Path

from django.contrib.staticfiles import finders
from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.http import require_safe
from django.views.static import serve

CACHE_SECONDS = 3600


@require_safe
def static_file(request: HttpRequest, path: str) -> HttpResponse:
    normalised = posixpath.normpath(path).lstrip("/")
    if normalised.startswith("..") or normalised != path:
        raise Http404("Not found.")
    found = finders.find(normalised)
    if not found:
        raise Http404("Not found.")
    location = Path(found)
    response = serve(request, location.name, document_root=str(location.parent))
    response["Cache-Control"] = f"public, max-age={CACHE_SECONDS}"
    return response

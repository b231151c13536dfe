"""The launcher's web app: list endpoints, /metrics and the status page.

``WebApp`` (``server.py``) is the only entry point; ``nodepool-launcher``
starts it unless ``--no-webapp``.  Modules: ``routes`` (the WSGI
application: paths, methods, status codes), ``wsgiserver`` (the cheroot
server and its ``ServerLimits``), ``views`` (the cli.md §3 list endpoints,
built with ``nodepool.tables``), ``state`` (a read-only snapshot of the
launcher), ``metrics`` (Prometheus collector), ``status`` (the status
page's JSON), ``launches`` (launch counts, latency and recent errors),
``negotiate`` and ``cache`` (HTTP details), ``static/`` (the page).
"""

from nodepool.web.server import WebApp
from nodepool.web.wsgiserver import ServerLimits

__all__ = ["WebApp", "ServerLimits"]

"""Outgoing HTTP clients share one TLS context per process. Building a context
reads the whole CA bundle (about 60 ms), and every JWKS fetch, webhook, Graph
call and sign-in made a client, and so a context, of its own."""

from __future__ import annotations

import functools
import ssl
from typing import Any

import httpx


@functools.cache
def tls_context() -> ssl.SSLContext:
    """httpx's own default (certifi's bundle, or SSL_CERT_FILE / SSL_CERT_DIR), built once."""
    return httpx.create_ssl_context()


def http_client(**options: Any) -> httpx.AsyncClient:
    """An `httpx.AsyncClient` that verifies servers as httpx's default does, on the shared context."""
    return httpx.AsyncClient(verify=tls_context(), **options)

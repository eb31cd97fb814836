"""A local fake of Microsoft Graph v1.0 (group members and owners) and of the
identity platform's token endpoint, for GraphDirectory's tests.

A real HTTP server (ThreadingHTTPServer on 127.0.0.1, a free port, a background
thread) answering with the status codes and error bodies Graph documents:

- token: POST /{tenant}/oauth2/v2.0/token, client credentials; a wrong secret
  answers 401 {"error": "invalid_client", "error_description": "AADSTS7000215: ..."};
- POST /v1.0/groups/{id}/members/$ref (and owners): 204; already there: 400
  Request_BadRequest "One or more added object references already exist for
  the following modified properties: 'members'."; group or object missing: 404
  Request_ResourceNotFound "Resource '{id}' does not exist or one of its queried
  reference-property objects are not present.";
- DELETE /v1.0/groups/{id}/members/{principal}/$ref: 204; not there: 404
  Request_ResourceNotFound (the same answer as for a missing group);
- GET /v1.0/groups/{id}?$select=id, GET /v1.0/groups/{id}/members?$select=id
  paged by @odata.nextLink;
- a missing or expired bearer token: 401 InvalidAuthenticationToken; a group in
  `forbidden`: 403 Authorization_RequestDenied.

Faults are queued with `inject`: an HTTP status (429 and 503 with Retry-After,
500, 401) or "drop" (the connection is closed without an answer) for the next
COUNT requests; `expire_tokens` makes every issued token stale."""

from __future__ import annotations

import json
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

GRAPH_SCOPE = "https://graph.microsoft.com/.default"
DIRECTORY_OBJECTS = "https://graph.microsoft.com/v1.0/directoryObjects/"
ALREADY_EXISTS = "One or more added object references already exist for the following modified properties: '{}'."
NOT_FOUND = "Resource '{}' does not exist or one of its queried reference-property objects are not present."
EXPIRED = "Access token has expired or is not yet valid."
EMPTY = "Access token is empty."
DENIED = "Insufficient privileges to complete the operation."
# Graph's throttling page shows this body for 429; 503 and 500 are from its error-code list.
FAULT_BODIES = {
    429: ("TooManyRequests", "Please retry again later."),
    503: (
        "serviceNotAvailable",
        "The service is temporarily unavailable for maintenance or is overloaded. "
        "You may repeat the request after a delay, which may be specified in a Retry-After header.",
    ),
    500: ("generalException", "An unspecified error has occurred."),
    401: ("InvalidAuthenticationToken", EXPIRED),
}


@dataclass
class Fault:
    kind: int | str  # an HTTP status, or "drop"
    left: int
    retry_after: str | None = None
    token_endpoint: bool = False


@dataclass
class Exchange:
    """One request the fake answered, for tests to look at."""

    method: str
    path: str
    status: int | None  # None: the connection was dropped
    body: dict | None
    at: float = field(default_factory=time.monotonic)


class GraphFake:
    def __init__(
        self,
        *,
        tenant_id: str = "11111111-2222-3333-4444-555555555555",
        client_id: str = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
        client_secret: str | None = None,
        page_size: int = 100,
        token_lifetime: int = 3599,
    ) -> None:
        self.tenant_id, self.client_id = tenant_id, client_id
        self.client_secret = client_secret or "s3cr3t~" + secrets.token_urlsafe(24)
        self.page_size = page_size
        self.token_lifetime = token_lifetime
        self.groups: dict[str, dict[str, list[str]]] = {}
        self.objects: set[str] = set()
        self.forbidden: set[str] = set()
        self.issued: list[str] = []  # every token handed out, so tests can look for leaks
        self.exchanges: list[Exchange] = []
        self.next_link_base: str | None = None  # to page elsewhere (a hostile answer)
        self._valid: dict[str, float] = {}
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # Set-up.

    def start(self) -> GraphFake:
        fake = self

        class Handler(_Handler):
            graph = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name="graph-fake", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(5)

    def __enter__(self) -> GraphFake:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def authority(self) -> str:
        return self.origin

    @property
    def base_url(self) -> str:
        return self.origin + "/v1.0"

    def add_group(self, group_id: str, members=(), owners=()) -> None:
        with self._lock:
            self.groups[group_id] = {"members": list(members), "owners": list(owners)}
            self.objects.update(members, owners)

    def add_objects(self, *ids: str) -> None:
        with self._lock:
            self.objects.update(ids)

    def inject(
        self, kind: int | str, count: int = 1, *, retry_after: str | int | None = None, token_endpoint: bool = False
    ) -> None:
        if kind != "drop" and kind not in FAULT_BODIES:
            raise ValueError(f"no such fault: {kind!r}")
        with self._lock:
            self._faults.append(Fault(kind, count, None if retry_after is None else str(retry_after), token_endpoint))

    def expire_tokens(self) -> None:
        with self._lock:
            self._valid.clear()

    # What happened.

    @property
    def token_requests(self) -> int:
        return sum(1 for e in self.exchanges if e.path.endswith("/oauth2/v2.0/token"))

    def answered(self, status: int | None) -> list[Exchange]:
        return [e for e in self.exchanges if e.status == status]

    def graph_calls(self, method: str | None = None, contains: str = "") -> list[Exchange]:
        return [
            e
            for e in self.exchanges
            if e.path.startswith("/v1.0/") and (method is None or e.method == method) and contains in e.path
        ]

    # Answers (called on the server's threads, under the lock).

    def _take_fault(self, token_endpoint: bool) -> Fault | None:
        for fault in self._faults:
            if fault.token_endpoint == token_endpoint and fault.left > 0:
                fault.left -= 1
                return fault
        return None

    def _token(self, path: str, form: dict[str, str]) -> tuple[int, dict, dict]:
        tenant = path.split("/")[1]
        if tenant != self.tenant_id:
            return 400, _aad("invalid_request", 90002, f"Tenant '{tenant}' not found."), {}
        if form.get("grant_type") != "client_credentials":
            return 400, _aad("unsupported_grant_type", 70003, "The app requested an unsupported grant type."), {}
        if form.get("scope") != GRAPH_SCOPE:
            return 400, _aad("invalid_scope", 70011, "The provided value for the input parameter 'scope' is not valid."), {}
        if form.get("client_id") != self.client_id:
            return (
                400,
                _aad(
                    "unauthorized_client",
                    700016,
                    f"Application with identifier '{form.get('client_id')}' was not found in the directory.",
                ),
                {},
            )
        if not secrets.compare_digest(form.get("client_secret", ""), self.client_secret):
            return (
                401,
                _aad(
                    "invalid_client",
                    7000215,
                    "Invalid client secret provided. Ensure the secret being sent "
                    "in the request is the client secret value, not the client secret ID.",
                ),
                {},
            )
        token = "eyJ0eXAiOiJKV1QifQ." + secrets.token_urlsafe(32)
        self.issued.append(token)
        self._valid[token] = time.monotonic() + self.token_lifetime
        return (
            200,
            {
                "token_type": "Bearer",
                "expires_in": self.token_lifetime,
                "ext_expires_in": self.token_lifetime,
                "access_token": token,
            },
            {},
        )

    def _graph(self, method: str, path: str, query: dict, authorization: str, body: dict | None) -> tuple[int, dict | None, dict]:
        token = authorization[7:] if authorization.startswith("Bearer ") else ""
        if not token:
            return _error(401, "InvalidAuthenticationToken", EMPTY)
        if self._valid.get(token, 0) <= time.monotonic():
            return _error(401, "InvalidAuthenticationToken", EXPIRED)
        parts = [unquote(p) for p in path.split("/")[2:]]  # after "/v1.0"
        if len(parts) < 2 or parts[0] != "groups":
            return _error(400, "BadRequest", f"Resource not found for the segment '{parts[0] if parts else ''}'.")
        group_id = parts[1]
        group = self.groups.get(group_id)
        if group is None:
            return _error(404, "Request_ResourceNotFound", NOT_FOUND.format(group_id))
        if group_id in self.forbidden:
            return _error(403, "Authorization_RequestDenied", DENIED)
        if len(parts) == 2 and method == "GET":
            return 200, {"@odata.context": f"{self._base()}/$metadata#groups(id)/$entity", "id": group_id}, {}
        collection = parts[2] if len(parts) > 2 else ""
        if collection not in ("members", "owners"):
            return _error(400, "BadRequest", f"Resource not found for the segment '{collection}'.")
        holders = group[collection]
        if len(parts) == 3 and method == "GET":
            start = int(query.get("$skiptoken", ["0"])[0])
            page = holders[start : start + self.page_size]
            answer = {
                "@odata.context": f"{self._base()}/$metadata#directoryObjects(id)",
                "value": [{"@odata.type": "#microsoft.graph.user", "id": i} for i in page],
            }
            if start + self.page_size < len(holders):
                link_base = self.next_link_base or self._base()
                answer["@odata.nextLink"] = (
                    f"{link_base}/groups/{group_id}/{collection}?$select=id&$skiptoken={start + self.page_size}"
                )
            return 200, answer, {}
        if len(parts) == 4 and parts[3] == "$ref" and method == "POST":
            ref = (body or {}).get("@odata.id", "")
            if not isinstance(ref, str) or not ref.startswith(DIRECTORY_OBJECTS):
                return _error(400, "Request_BadRequest", f"Invalid URL format specified in @odata.id for {collection}")
            principal = ref[len(DIRECTORY_OBJECTS) :]
            if principal not in self.objects:
                return _error(404, "Request_ResourceNotFound", NOT_FOUND.format(principal))
            if principal in holders:
                return _error(400, "Request_BadRequest", ALREADY_EXISTS.format(collection))
            holders.append(principal)
            return 204, None, {}
        if len(parts) == 5 and parts[4] == "$ref" and method == "DELETE":
            if parts[3] not in holders:
                return _error(404, "Request_ResourceNotFound", NOT_FOUND.format(parts[3]))
            holders.remove(parts[3])
            return 204, None, {}
        return _error(405, "Request_BadRequest", "The HTTP method is not supported for this resource.")

    def _base(self) -> str:
        return self.base_url


def _inner() -> dict:
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
        "request-id": str(uuid.uuid4()),
        "client-request-id": str(uuid.uuid4()),
    }


def _error(status: int, code: str, message: str, headers: dict | None = None) -> tuple[int, dict, dict]:
    return status, {"error": {"code": code, "message": message, "innerError": _inner()}}, headers or {}


def _aad(error: str, number: int, text: str) -> dict:
    trace = str(uuid.uuid4())
    return {
        "error": error,
        "error_description": f"AADSTS{number}: {text}\r\nTrace ID: {trace}",
        "error_codes": [number],
        "timestamp": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ"),
        "trace_id": trace,
        "correlation_id": str(uuid.uuid4()),
        "error_uri": f"https://login.microsoftonline.com/error?code={number}",
    }


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as httpx pools connections
    disable_nagle_algorithm = True  # headers and body go in two writes: no 40 ms delayed-ACK stall
    graph: GraphFake

    def log_message(self, format, *args) -> None:  # quiet: tests read `exchanges`
        pass

    def _serve(self) -> None:
        fake = self.graph
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        split = urlsplit(self.path)
        is_token = split.path.endswith("/oauth2/v2.0/token")
        with fake._lock:
            fault = fake._take_fault(is_token)
            headers: dict = {}
            if fault and fault.kind == "drop":
                fake.exchanges.append(Exchange(self.command, self.path, None, None))
                self.close_connection = True
                return
            if fault:
                code, message = FAULT_BODIES[fault.kind]
                status, body, headers = _error(fault.kind, code, message)
                if fault.retry_after is not None:
                    headers["Retry-After"] = fault.retry_after
                if fault.kind == 429:
                    body["error"]["innerError"].update(code="429", message="Please retry after", status="429")
            elif is_token and self.command == "POST":
                form = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
                status, body, headers = fake._token(split.path, form)
            elif split.path.startswith("/v1.0/"):
                try:
                    payload = json.loads(raw) if raw else None
                except ValueError:
                    payload = None
                status, body, headers = fake._graph(
                    self.command, split.path, parse_qs(split.query), self.headers.get("Authorization", ""), payload
                )
            else:
                status, body, headers = _error(404, "NotFound", "Not found")
            if status == 401 and not is_token:
                headers["WWW-Authenticate"] = 'Bearer realm="", error="invalid_token"'
            fake.exchanges.append(Exchange(self.command, self.path, status, body))
        data = json.dumps(body).encode() if body is not None else b""
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        if data:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_DELETE = _serve

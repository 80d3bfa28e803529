"""A stand-in for the parts of Grafana's HTTP API that ``lodestar grafana bootstrap`` uses.

No Grafana server can run on this machine, so this real HTTP server on 127.0.0.1 keeps
Grafana's state (data sources by uid, folders, dashboards), answers like Grafana's legacy
API (``/api/datasources``, ``/api/folders``, ``/api/dashboards/db``; 404/401/409/412 bodies
with ``message``) and records every call. Request bodies are checked against the fields of
Grafana's API commands (unknown fields are refused, so a misspelt key fails the test).
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError


class DataSourceCommand(BaseModel):
    """POST /api/datasources and PUT /api/datasources/uid/:uid (AddDataSourceCommand)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    type: str
    access: str
    uid: str | None = None
    url: str = ""
    user: str = ""
    database: str = ""
    basicAuth: bool = False
    basicAuthUser: str = ""
    withCredentials: bool = False
    isDefault: bool = False
    jsonData: dict[str, Any] | None = None
    secureJsonData: dict[str, str] | None = None
    version: int | None = None


class FolderCommand(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str
    uid: str | None = None
    parentUid: str | None = None
    description: str | None = None


class SaveDashboardCommand(BaseModel):
    """POST /api/dashboards/db."""

    model_config = ConfigDict(extra="forbid")

    dashboard: dict[str, Any]
    folderId: int | None = None
    folderUid: str | None = None
    message: str = ""
    overwrite: bool = False


@dataclass
class Call:
    method: str
    path: str
    body: Any
    authorization: str | None
    status: int


@dataclass
class GrafanaState:
    token: str
    datasources: dict[str, dict[str, Any]] = field(default_factory=dict)
    folders: dict[str, dict[str, Any]] = field(default_factory=dict)
    dashboards: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    next_id: int = 1
    lock: threading.Lock = field(default_factory=threading.Lock)


def _handler(state: GrafanaState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            return None

        def _reply(self, status: int, body: Any, raw: Any) -> None:
            state.calls.append(Call(self.command, self.path, raw, self.headers.get("Authorization"), status))
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = json.loads(self.rfile.read(length)) if length else None
            if self.headers.get("Authorization") != f"Bearer {state.token}":
                return self._reply(401, {"message": "Unauthorized"}, raw)
            if raw is not None and not self.headers.get("Content-Type", "").startswith("application/json"):
                return self._reply(415, {"message": "bad content type"}, raw)
            with state.lock:
                status, body = self._route(raw)
            self._reply(status, body, raw)

        def _route(self, raw: Any) -> tuple[int, Any]:
            method, path = self.command, self.path
            try:
                if m := re.fullmatch(r"/api/datasources/uid/([^/]+)", path):
                    uid = m.group(1)
                    if method == "GET":
                        ds = state.datasources.get(uid)
                        return (200, ds) if ds else (404, {"message": "Data source not found"})
                    if method == "PUT":
                        if uid not in state.datasources:
                            return 404, {"message": "Data source not found"}
                        cmd = DataSourceCommand.model_validate(raw)
                        if cmd.uid not in (None, uid):
                            return 400, {"message": "uid in the body differs from the path"}
                        state.datasources[uid] = {**state.datasources[uid], **cmd.model_dump(exclude_none=True)}
                        return 200, {
                            "message": "Datasource updated",
                            "name": cmd.name,
                            "id": state.datasources[uid]["id"],
                        }
                if path == "/api/datasources" and method == "POST":
                    cmd = DataSourceCommand.model_validate(raw)
                    uid = cmd.uid or f"generated-{state.next_id}"
                    if uid in state.datasources:
                        return 409, {"message": "data source with the same uid already exists"}
                    state.datasources[uid] = {**cmd.model_dump(exclude_none=True), "uid": uid, "id": state.next_id}
                    state.next_id += 1
                    return 200, {"message": "Datasource added", "id": state.datasources[uid]["id"], "name": cmd.name}
                if m := re.fullmatch(r"/api/folders/([^/]+)", path):
                    folder = state.folders.get(m.group(1))
                    return (200, folder) if folder else (404, {"message": "folder not found"})
                if path == "/api/folders" and method == "POST":
                    fcmd = FolderCommand.model_validate(raw)
                    uid = fcmd.uid or f"folder-{state.next_id}"
                    if uid in state.folders:
                        return 409, {"message": "a folder with the same uid already exists"}
                    state.folders[uid] = {"uid": uid, "title": fcmd.title, "id": state.next_id}
                    state.next_id += 1
                    return 200, state.folders[uid]
                if path == "/api/dashboards/db" and method == "POST":
                    dcmd = SaveDashboardCommand.model_validate(raw)
                    model = dcmd.dashboard
                    if not model.get("title") or not model.get("uid"):
                        return 400, {"message": "Dashboard title and uid are required"}
                    if model.get("id") is not None:
                        return 400, {"message": "id must be null to create or overwrite by uid"}
                    if dcmd.folderUid and dcmd.folderUid not in state.folders:
                        return 400, {"message": "folder not found"}
                    if model["uid"] in state.dashboards and not dcmd.overwrite:
                        return 412, {"message": "A dashboard with the same uid already exists", "status": "name-exists"}
                    version = state.dashboards.get(model["uid"], {}).get("version", 0) + 1
                    state.dashboards[model["uid"]] = {
                        "dashboard": model,
                        "folderUid": dcmd.folderUid,
                        "version": version,
                    }
                    return 200, {
                        "id": state.next_id,
                        "uid": model["uid"],
                        "url": f"/d/{model['uid']}/x",
                        "status": "success",
                        "version": version,
                    }
            except ValidationError as exc:
                return 400, {"message": f"bad request body: {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}"}
            return 404, {"message": "Not found"}

        def do_GET(self) -> None:
            self._handle()

        def do_POST(self) -> None:
            self._handle()

        def do_PUT(self) -> None:
            self._handle()

    return Handler


class GrafanaStandIn:
    """Serves on 127.0.0.1:<free port> until :meth:`stop`."""

    def __init__(self, token: str) -> None:
        self.state = GrafanaState(token=token)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.state))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

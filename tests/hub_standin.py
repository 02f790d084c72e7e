"""A stand-in for the Hugging Face Hub's HTTP API on 127.0.0.1, for running the real huggingface_hub client.

Serves model repositories made of local files, answering what the client asks:
- GET /api/models/<repo>[/revision/<rev>]  repository info (with file sizes when ?blobs=True)
- GET /api/models/<repo>/tree/<rev>[/<dir>]  file listing (?recursive=True)
- HEAD/GET /<repo>/resolve/<rev>/<path>  the file, with Range for resumed downloads
It sends no Xet headers or hashes, so the client downloads over plain HTTP. A gated
repository keeps its info and listing public, as on the Hub, and answers file requests
as the Hub does: 401 without a token, 403 with a token that has no access, both with
X-Error-Code: GatedRepo. Every request is recorded in `requests`.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

LFS_SUFFIXES = (".safetensors", ".bin", ".ckpt")


@dataclass
class Request:
    method: str
    path: str  # unquoted, without the query
    token: str | None
    status: int = 0  # set once answered


@dataclass
class Repo:
    files: dict[str, Path]  # path in the repository -> file on disk
    gated_token: str | None = None  # when set, only this token may download files
    sha: str = ""
    meta: dict[str, dict] = field(default_factory=dict)

    def __post_init__(self):
        commit = hashlib.sha1()
        for name in sorted(self.files):
            data = self.files[name].read_bytes()
            blob = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
            entry = {"size": len(data), "blob": blob}
            if name.endswith(LFS_SUFFIXES):
                entry["sha256"] = hashlib.sha256(data).hexdigest()
            self.meta[name] = entry
            commit.update(f"{name}:{blob}".encode())
        self.sha = commit.hexdigest()


def repo_from_folder(folder: Path, extra: dict[str, Path] | None = None, gated_token: str | None = None) -> Repo:
    files = {path.relative_to(folder).as_posix(): path for path in sorted(folder.rglob("*")) if path.is_file()}
    return Repo({**files, **(extra or {})}, gated_token=gated_token)


def _flag(query: dict, name: str) -> bool:
    return query.get(name, ["false"])[0].lower() in ("true", "1")


class HubStandIn:
    """Start with `with HubStandIn(repos) as hub:`; hub.url is the HF_ENDPOINT to use."""

    def __init__(self, repos: dict[str, Repo], chunk: int = 64 * 1024, delay: float = 0.0):
        self.repos = repos
        self.chunk, self.delay = chunk, delay  # bytes per write, seconds of wait before each (a slow network)
        self.requests: list[Request] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> "HubStandIn":
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def downloads(self, repo: str | None = None) -> list[str]:
        """Paths whose content was sent (GET answered 200/206), optionally of one repository."""
        prefix = f"/{repo}/resolve/" if repo else ""
        return [r.path for r in self.requests if r.method == "GET" and r.status in (200, 206)
                and "/resolve/" in r.path and r.path.startswith(prefix)]

    def _handler(self):
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_HEAD(self):
                self._answer(send_body=False)

            def do_GET(self):
                self._answer(send_body=True)

            def _answer(self, send_body: bool):
                url = urlsplit(self.path)
                path = unquote(url.path)
                auth = self.headers.get("Authorization", "")
                token = auth[len("Bearer "):] if auth.startswith("Bearer ") else None
                request = Request(self.command, path, token)
                hub.requests.append(request)  # when asked, so clearing the list drops answers still being sent
                request.status = self._route(path, parse_qs(url.query), token, send_body)

            def _send(self, status: int, body: bytes = b"", headers: dict | None = None, send_body: bool = True):
                self.send_response(status)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if send_body and body:
                    self.wfile.write(body)
                return status

            def _json(self, payload, send_body: bool):
                return self._send(200, json.dumps(payload).encode(), {"Content-Type": "application/json"}, send_body)

            def _error(self, status: int, code: str, message: str, send_body: bool):
                body = json.dumps({"error": message}).encode()
                return self._send(status, body, {"X-Error-Code": code, "X-Error-Message": message,
                                                 "Content-Type": "application/json"}, send_body)

            def _repo(self, repo_id: str, revision: str | None, send_body: bool):
                repo = hub.repos.get(repo_id)
                if repo is None:
                    return None, self._error(404, "RepoNotFound", "Repository not found", send_body)
                if revision not in (None, "main", repo.sha):
                    return None, self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}", send_body)
                return repo, None

            def _route(self, path: str, query: dict, token: str | None, send_body: bool) -> int:
                if path.startswith("/api/models/"):
                    parts = path[len("/api/models/"):].split("/")
                    repo_id, tail = "/".join(parts[:2]), parts[2:]
                    if not tail or tail[0] == "revision":
                        repo, failed = self._repo(repo_id, tail[1] if tail else None, send_body)
                        return failed or self._json(self._info(repo_id, repo, _flag(query, "blobs")), send_body)
                    if tail[0] == "tree" and len(tail) >= 2:
                        repo, failed = self._repo(repo_id, tail[1], send_body)
                        return failed or self._json(self._tree(repo, "/".join(tail[2:]), _flag(query, "recursive")),
                                                    send_body)
                    return self._error(404, "NotFound", "Unknown API route", send_body)
                parts = path.lstrip("/").split("/")
                if len(parts) >= 5 and parts[2] == "resolve":
                    repo, failed = self._repo("/".join(parts[:2]), parts[3], send_body)
                    return failed or self._file(repo, "/".join(parts[:2]), "/".join(parts[4:]), token, send_body)
                return self._error(404, "NotFound", "Unknown route", send_body)

            def _info(self, repo_id: str, repo: Repo, blobs: bool) -> dict:
                siblings = []
                for name, meta in sorted(repo.meta.items()):
                    sibling = {"rfilename": name}
                    if blobs:
                        sibling.update(size=meta["size"], blobId=meta["blob"])
                        if "sha256" in meta:
                            sibling["lfs"] = {"size": meta["size"], "sha256": meta["sha256"], "pointerSize": 134}
                    siblings.append(sibling)
                return {"_id": repo.sha[:24], "id": repo_id, "modelId": repo_id, "sha": repo.sha, "private": False,
                        "gated": "manual" if repo.gated_token else False, "disabled": False, "tags": [],
                        "lastModified": "2024-01-01T00:00:00.000Z", "siblings": siblings}

            def _tree(self, repo: Repo, folder: str, recursive: bool) -> list[dict]:
                prefix = f"{folder}/" if folder else ""
                entries, folders = [], set()
                for name, meta in sorted(repo.meta.items()):
                    if not name.startswith(prefix):
                        continue
                    rest = name[len(prefix):].split("/")
                    for depth in range(1, len(rest) if recursive else min(2, len(rest))):
                        folders.add(prefix + "/".join(rest[:depth]))
                    if len(rest) > 1 and not recursive:
                        continue
                    entry = {"type": "file", "oid": meta["blob"], "size": meta["size"], "path": name}
                    if "sha256" in meta:
                        entry["lfs"] = {"oid": meta["sha256"], "size": meta["size"], "pointerSize": 134}
                    entries.append(entry)
                entries += [{"type": "directory", "oid": "0" * 40, "size": 0, "path": name} for name in sorted(folders)]
                return entries

            def _file(self, repo: Repo, repo_id: str, name: str, token: str | None, send_body: bool) -> int:
                if repo.gated_token is not None and token != repo.gated_token:
                    if token is None:
                        return self._error(401, "GatedRepo", f"Access to model {repo_id} is restricted. You must "
                                           "have access to it and be authenticated to access it. Please log in.",
                                           send_body)
                    return self._error(403, "GatedRepo", f"Access to model {repo_id} is restricted and you are not "
                                       "in the authorized list.", send_body)
                meta = repo.meta.get(name)
                if meta is None:
                    return self._error(404, "EntryNotFound", f"{name} does not exist", send_body)
                data = repo.files[name].read_bytes()
                etag = meta.get("sha256", meta["blob"])
                headers = {"ETag": f'"{etag}"', "X-Repo-Commit": repo.sha, "Accept-Ranges": "bytes",
                           "Content-Type": "application/octet-stream"}
                if "sha256" in meta:
                    headers.update({"X-Linked-Etag": f'"{etag}"', "X-Linked-Size": str(meta["size"])})
                start, status = 0, 200
                ranged = self.headers.get("Range", "")
                if send_body and ranged.startswith("bytes="):
                    start = int(ranged[len("bytes="):].split("-")[0] or 0)
                    status = 206
                    headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
                body = data[start:]
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if send_body:
                    try:
                        for offset in range(0, len(body), hub.chunk):
                            time.sleep(hub.delay)
                            self.wfile.write(body[offset:offset + hub.chunk])
                    except (BrokenPipeError, ConnectionResetError):  # the client stopped reading
                        self.close_connection = True
                return status

        return Handler

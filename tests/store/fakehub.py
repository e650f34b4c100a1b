"""A fake Hugging Face hub on 127.0.0.1: just enough of its HTTP API for huggingface_hub's downloads.

Routes (what huggingface_hub calls):

- ``GET /api/models/{owner}/{name}[/revision/{rev}]``: model info with the commit (``sha``) and the
  ``siblings`` (path, size, git blob id, and ``lfs`` {sha256, size} for large files);
- ``HEAD|GET /{owner}/{name}/resolve/{rev}/{path}``: the file, with ``X-Repo-Commit``, ``ETag``
  (git blob id, or the SHA-256 of an LFS file in ``X-Linked-Etag``), ``X-Linked-Size``,
  ``Content-Length`` and single ``Range: bytes=N-`` requests (206);
- errors as the hub spells them: 404 with ``X-Error-Code`` RepoNotFound / RevisionNotFound / EntryNotFound.

It records every request, and can cut the connection once in the middle of a file (``cut_once``)
or answer a file with an HTTP error (``fail``), to exercise resumption and error handling.
"""

from __future__ import annotations

import hashlib
import json
import random
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from urllib.parse import unquote, urlsplit

LFS_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors", ".model")


def git_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class FakeRepo:
    repo_id: str
    files: dict[str, bytes]
    commit: str = ""
    refs: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.commit:
            self.commit = hashlib.sha1(f"{self.repo_id}:{sorted(self.files)}".encode()).hexdigest()
        self.refs.setdefault("main", self.commit)

    def is_lfs(self, path: str) -> bool:
        return path.endswith(LFS_SUFFIXES)


@dataclass
class Request:
    method: str
    path: str
    range: str | None


class FakeHub:
    """Serve repos from a thread; ``url`` is the endpoint to point HF_ENDPOINT at."""

    def __init__(self, repos: list[FakeRepo]) -> None:
        self.repos = {repo.repo_id: repo for repo in repos}
        self.requests: list[Request] = []
        self._cuts: dict[tuple[str, str], int] = {}
        self._failures: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeHub:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def cut_once(self, repo_id: str, path: str, *, after_bytes: int) -> None:
        """The next GET of this file sends ``after_bytes`` bytes of the body, then drops the connection."""
        self._cuts[(repo_id, path)] = after_bytes

    def fail(self, repo_id: str, path: str, status: int) -> None:
        """Every request for this file is answered with ``status``."""
        self._failures[(repo_id, path)] = status

    def file_gets(self, repo_id: str, path: str) -> list[Request]:
        target = f"/{repo_id}/resolve/"
        return [
            r
            for r in self.requests
            if r.method == "GET" and r.path.startswith(target) and r.path.endswith("/" + path)
        ]

    def resolve_gets(self) -> list[Request]:
        return [r for r in self.requests if r.method == "GET" and "/resolve/" in r.path]

    def info(self, repo: FakeRepo, commit: str) -> dict[str, object]:
        siblings = []
        for path, data in sorted(repo.files.items()):
            entry: dict[str, object] = {"rfilename": path, "size": len(data), "blobId": git_oid(data)}
            if repo.is_lfs(path):
                entry["lfs"] = {"sha256": sha256(data), "size": len(data), "pointerSize": 134}
            siblings.append(entry)
        return {
            "_id": "0" * 24,
            "id": repo.repo_id,
            "modelId": repo.repo_id,
            "sha": commit,
            "private": False,
            "disabled": False,
            "gated": False,
            "downloads": 0,
            "likes": 0,
            "tags": [],
            "siblings": siblings,
        }


def _make_handler(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out in separate writes

        def log_message(self, format: str, *args: object) -> None:  # quiet
            pass

        def do_GET(self) -> None:
            self._route(head=False)

        def do_HEAD(self) -> None:
            self._route(head=True)

        def _error(self, status: int, code: str | None = None) -> None:
            body = json.dumps({"error": code or "error"}).encode()
            self.send_response(status)
            if code:
                self.send_header("X-Error-Code", code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _route(self, *, head: bool) -> None:
            path = urlsplit(self.path).path
            with hub._lock:
                hub.requests.append(Request(self.command, path, self.headers.get("Range")))
            parts = path.lstrip("/").split("/")
            if parts[:2] == ["api", "models"] and len(parts) >= 4:
                repo_id = "/".join(parts[2:4])
                revision = unquote(parts[5]) if len(parts) >= 6 and parts[4] == "revision" else "main"
                self._serve_info(repo_id, revision)
            elif len(parts) >= 5 and parts[2] == "resolve":
                repo_id = "/".join(parts[:2])
                revision = unquote(parts[3])
                file_path = unquote("/".join(parts[4:]))
                self._serve_file(repo_id, revision, file_path, head=head)
            else:
                self._error(404)

        def _commit(self, repo: FakeRepo, revision: str) -> str | None:
            if revision in repo.refs:
                return repo.refs[revision]
            return revision if revision in repo.refs.values() else None

        def _serve_info(self, repo_id: str, revision: str) -> None:
            repo = hub.repos.get(repo_id)
            if repo is None:
                self._error(404, "RepoNotFound")
                return
            commit = self._commit(repo, revision)
            if commit is None:
                self._error(404, "RevisionNotFound")
                return
            body = json.dumps(hub.info(repo, commit)).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _serve_file(self, repo_id: str, revision: str, file_path: str, *, head: bool) -> None:
            repo = hub.repos.get(repo_id)
            if repo is None:
                self._error(404, "RepoNotFound")
                return
            commit = self._commit(repo, revision)
            if commit is None:
                self._error(404, "RevisionNotFound")
                return
            status = hub._failures.get((repo_id, file_path))
            if status is not None:
                self._error(status)
                return
            data = repo.files.get(file_path)
            if data is None:
                self._error(404, "EntryNotFound")
                return
            start = 0
            requested = self.headers.get("Range")
            if requested and requested.startswith("bytes=") and requested.endswith("-"):
                start = int(requested[len("bytes=") : -1])
            body = data[start:]
            self.send_response(206 if start else 200)
            self.send_header("X-Repo-Commit", commit)
            self.send_header("ETag", f'"{git_oid(data)}"')
            if repo.is_lfs(file_path):
                self.send_header("X-Linked-Etag", f'"{sha256(data)}"')
                self.send_header("X-Linked-Size", str(len(data)))
            self.send_header("Accept-Ranges", "bytes")
            if start:
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Content-Type", "application/octet-stream")
            self.end_headers()
            if head:
                return
            with hub._lock:
                cut = hub._cuts.pop((repo_id, file_path), None)
            if cut is not None:
                self.wfile.write(body[:cut])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(2)
                return
            self.wfile.write(body)

    return Handler


# The model most store tests exercise the store's mechanics with (IndexTTS-2.5's own: test_store_indextts25).
MODEL = "IndexTeam/IndexTTS-2"


def _preset_text(name: str, preset: str = "tiny") -> bytes:
    return (resources.files("indextts2.model.presets") / preset / name).read_bytes()


def indextts2_repos(*, seed: int = 0, big: int = 300_000) -> list[FakeRepo]:
    """Small generated stand-ins for the repos of IndexTTS-2 and IndexTTS-2.5 (plus files they do not use)."""
    rng = random.Random(seed)

    def blob(n: int) -> bytes:
        # randbytes cannot make hundreds of MB at once; a repeated 1 MiB block is random enough here.
        block = 2**20
        if n <= block:
            return rng.randbytes(n)
        return rng.randbytes(block) * (n // block) + rng.randbytes(n % block)

    return [
        FakeRepo(
            "IndexTeam/IndexTTS-2",
            {
                "config.yaml": _preset_text("config.yaml"),
                "gpt.pth": blob(big),
                "s2mel.pth": blob(50_000),
                "bpe.model": blob(4_000),
                "wav2vec2bert_stats.pt": blob(1_500),
                "feat1.pt": blob(3_000),
                "feat2.pt": blob(2_000),
                "qwen0.6bemo4-merge/config.json": b'{"model_type": "qwen3"}\n',
                "qwen0.6bemo4-merge/model.safetensors": blob(20_000),
                "qwen0.6bemo4-merge/tokenizer.json": b'{"version": "1.0"}\n',
                "README.md": b"# IndexTTS-2 (fake)\n",
            },
        ),
        FakeRepo(
            "IndexTeam/IndexTTS-2.5",
            {
                "config.yaml": _preset_text("config.yaml", "tiny-2.5"),
                "gpt.pth": blob(big // 2),
                "s2mel.pth": blob(40_000),
                "codec.pth": blob(8_000),
                "multilingual_zh_ja_yue_char_del.tiktoken": _preset_text(
                    "multilingual_zh_ja_yue_char_del.tiktoken", "tiny-2.5"
                ),
                "wav2vec2bert_stats.pt": blob(1_400),
                "feat1.pt": blob(3_100),
                "feat2.pt": blob(2_100),
                "qwen0.6bemo4-merge/config.json": b'{"model_type": "qwen3"}\n',
                "qwen0.6bemo4-merge/model.safetensors": blob(20_000),
                "README.md": b"# IndexTTS-2.5 (fake)\n",
            },
        ),
        FakeRepo(
            "facebook/w2v-bert-2.0",
            {
                "config.json": _preset_text("w2v_bert.json"),
                "model.safetensors": blob(40_000),
                "preprocessor_config.json": _preset_text("w2v_bert_preprocessor.json"),
                "README.md": b"# w2v-BERT 2.0 (fake)\n",
            },
        ),
        FakeRepo(
            "amphion/MaskGCT",
            {
                "semantic_codec/model.safetensors": blob(10_000),
                "acoustic_codec/model.safetensors": blob(9_000),
            },
        ),
        FakeRepo("funasr/campplus", {"campplus_cn_common.bin": blob(6_000)}),
        FakeRepo(
            "nvidia/bigvgan_v2_22khz_80band_256x",
            {"config.json": _preset_text("bigvgan.json"), "bigvgan_generator.pt": blob(12_000)},
        ),
    ]


@contextmanager
def serve(repos: list[FakeRepo] | None = None) -> Iterator[FakeHub]:
    hub = FakeHub(repos if repos is not None else indextts2_repos()).start()
    try:
        yield hub
    finally:
        hub.stop()


def write_checkpoints(
    directory: Path,
    repos: list[FakeRepo] | None = None,
    *,
    with_qwen: bool = True,
    model_id: str = "IndexTeam/IndexTTS-2",
) -> Path:
    """The fake repos' files in the official checkpoints layout of a model (what `models import` reads)."""
    from indextts2.store.manifest import get_model_spec

    by_id = {repo.repo_id: repo for repo in (repos if repos is not None else indextts2_repos())}
    for component in get_model_spec(model_id).components:
        for repo_path, data in by_id[component.repo_id].files.items():
            local = component.local_path(repo_path)
            if local is None or (not with_qwen and local.startswith("qwen")):
                continue
            target = directory / local
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
    return directory

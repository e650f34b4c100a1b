"""Talking to the hub (huggingface.co or a mirror) through huggingface_hub.

Two calls: the listing of a repo at a revision (``HfApi.model_info`` with file metadata: the commit,
every file's size, and the SHA-256 of LFS files), and the transfer of one file into a partial file
that survives interruption (``huggingface_hub.file_download.http_get`` with a Range request for the
bytes already there). We keep the partial file ourselves, under a stable name, because
huggingface_hub's own cache discards an interrupted download; that is what lets
``indextts2 models download`` resume a multi-gigabyte transfer after Ctrl-C.

Every failure becomes an :mod:`indextts2.errors` error that says what to do.
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import inspect
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlparse

from indextts2.__about__ import __version__
from indextts2.errors import IndexTTS2Error, InvalidInput, ModelNotFound, StoreError
from indextts2.store.layout import disk_error

__all__ = ["DEFAULT_ENDPOINT", "Hub", "RemoteFile", "RemoteListing"]

logger = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "https://huggingface.co"
# Consecutive failed attempts (no byte received) before a transfer gives up; the partial file stays.
TRANSFER_ATTEMPTS = 3
RETRY_PAUSE_S = 0.5


@dataclass(frozen=True)
class RemoteFile:
    """A file of a repo as the hub lists it."""

    path: str
    size: int
    sha256: str | None
    """The LFS SHA-256 (large files); None for small files kept in git."""
    git_oid: str | None
    """The git blob id; for a small file, the hash of its bytes."""


@dataclass(frozen=True)
class RemoteListing:
    repo_id: str
    revision: str
    commit: str
    files: dict[str, RemoteFile]


def _transport_errors() -> tuple[type[BaseException], ...]:
    """The HTTP client's transport errors (httpx for huggingface_hub 1.x, httpx2 for 2.x)."""
    found: list[type[BaseException]] = []
    for name in ("httpx2", "httpx", "requests"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        error = getattr(module, "TransportError", None) or getattr(module, "RequestException", None)
        if isinstance(error, type) and issubclass(error, BaseException):
            found.append(error)
    return tuple(found)


class _SilentBar:
    """Stands in for huggingface_hub's tqdm bar: progress is reported through our own callbacks."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __enter__(self) -> _SilentBar:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def update(self, n: float | None = 1) -> None:
        pass

    def close(self) -> None:
        pass


class _ReportingFile:
    """A file wrapper that reports every byte written (and rewinds, when a server ignores Range)."""

    def __init__(self, handle: BinaryIO, on_bytes: Callable[[int], None]) -> None:
        self._handle = handle
        self._on_bytes = on_bytes

    def write(self, data: bytes) -> int:
        written = self._handle.write(data)
        self._on_bytes(len(data))
        return written

    def tell(self) -> int:
        return self._handle.tell()

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._handle.seek(offset, whence)

    def truncate(self, size: int | None = None) -> int:
        position = self._handle.tell()
        end = self._handle.seek(0, 2)
        self._handle.seek(position)
        kept = self._handle.truncate(size)
        self._on_bytes(kept - end)
        return kept

    def flush(self) -> None:
        self._handle.flush()


class Hub:
    """One hub endpoint (``https://huggingface.co`` or a mirror)."""

    def __init__(self, endpoint: str | None = None, *, token: str | bool | None = None) -> None:
        self.endpoint = (endpoint or DEFAULT_ENDPOINT).rstrip("/")
        if not self.endpoint.startswith(("http://", "https://")):
            raise InvalidInput(
                f"hub endpoint {self.endpoint!r} is not an http(s) URL; check --endpoint / HF_ENDPOINT"
            )
        self.token = token

    @contextlib.contextmanager
    def _errors(self, repo_id: str, revision: str, what: str) -> Iterator[None]:
        from huggingface_hub import errors as hf_errors

        try:
            yield
        except IndexTTS2Error:
            raise
        except hf_errors.GatedRepoError as exc:
            raise StoreError(
                f"{repo_id} is gated on {self.endpoint}: accept its terms on the model page and set HF_TOKEN"
            ) from exc
        except hf_errors.RepositoryNotFoundError as exc:
            raise ModelNotFound(
                f"{self.endpoint} has no repository {repo_id} (if it is private, set HF_TOKEN; "
                "if you use a mirror, check --endpoint / HF_ENDPOINT)"
            ) from exc
        except hf_errors.RevisionNotFoundError as exc:
            raise ModelNotFound(f"{repo_id} has no revision {revision!r} on {self.endpoint}") from exc
        except hf_errors.EntryNotFoundError as exc:
            raise StoreError(f"{repo_id} at {revision} has no file {what} on {self.endpoint}") from exc
        except hf_errors.OfflineModeIsEnabled as exc:
            raise StoreError(
                "huggingface_hub is in offline mode (HF_HUB_OFFLINE=1 when it was imported); "
                "use --offline to work from the cache, or unset HF_HUB_OFFLINE"
            ) from exc
        except hf_errors.HfHubHTTPError as exc:
            status = getattr(getattr(exc, "response", None), "status_code", "an error")
            raise StoreError(
                f"{self.endpoint} answered HTTP {status} for {repo_id} {what}; try again later, or use a "
                "mirror (--endpoint / HF_ENDPOINT)"
            ) from exc
        except _transport_errors() as exc:
            raise StoreError(
                f"cannot reach {self.endpoint} for {repo_id} {what} ({exc}); check the network, use a mirror "
                "(--endpoint / HF_ENDPOINT), or carry the model in with `indextts2 models import`"
            ) from exc

    def listing(self, repo_id: str, revision: str) -> RemoteListing:
        """The commit a revision points at and every file of the repo there, with sizes and hashes."""
        from huggingface_hub import HfApi

        api = HfApi(
            endpoint=self.endpoint, token=self.token, library_name="indextts2", library_version=__version__
        )
        with self._errors(repo_id, revision, "(listing)"):
            info = api.model_info(repo_id, revision=revision, files_metadata=True)
        if not info.sha:
            raise StoreError(
                f"{self.endpoint} gave no commit for {repo_id} at {revision}; is it a hub mirror?"
            )
        files: dict[str, RemoteFile] = {}
        for sibling in info.siblings or ():
            lfs = sibling.lfs
            sha256 = None if lfs is None else _field(lfs, "sha256")
            size = (
                sibling.size if sibling.size is not None else (None if lfs is None else _field(lfs, "size"))
            )
            if size is None:
                raise StoreError(f"{self.endpoint} listed {repo_id}/{sibling.rfilename} without a size")
            files[sibling.rfilename] = RemoteFile(
                path=sibling.rfilename,
                size=int(size),
                sha256=None if sha256 is None else str(sha256),
                git_oid=None if lfs is not None else sibling.blob_id,
            )
        return RemoteListing(repo_id=repo_id, revision=revision, commit=str(info.sha), files=files)

    def fetch(
        self, repo_id: str, commit: str, file: RemoteFile, partial: Path, on_bytes: Callable[[int], None]
    ) -> None:
        """Bring ``file`` into ``partial``, continuing from the bytes already there.

        ``on_bytes`` is told of every byte that lands (negative when a server ignores the range and
        the transfer restarts). On return the partial file has ``file.size`` bytes; the caller hashes
        it. On failure (or Ctrl-C) the partial file stays, and the next call resumes it.
        """
        from huggingface_hub import get_hf_file_metadata, hf_hub_url
        from huggingface_hub.file_download import http_get
        from huggingface_hub.utils import build_hf_headers

        url = hf_hub_url(repo_id, file.path, revision=commit, endpoint=self.endpoint)
        headers = build_hf_headers(token=self.token, library_name="indextts2", library_version=__version__)
        with self._errors(repo_id, commit, file.path):
            metadata = get_hf_file_metadata(
                url, token=self.token, library_name="indextts2", library_version=__version__
            )
        location = metadata.location or url
        if urlparse(location).netloc != urlparse(url).netloc:
            headers.pop("authorization", None)  # a signed CDN URL: the token stays on the hub
        extra: dict[str, Any] = {}
        if "tqdm_class" in inspect.signature(http_get).parameters:
            extra["tqdm_class"] = _SilentBar

        failures = 0
        while True:
            have = partial.stat().st_size if partial.exists() else 0
            if have > file.size:
                logger.warning("partial download %s is larger than %s; starting over", partial, file.path)
                partial.unlink()
                on_bytes(-have)
                have = 0
            if have == file.size:
                return
            before = have
            try:
                with self._errors(repo_id, commit, file.path), _open_partial(partial) as handle:
                    http_get(
                        location,
                        _ReportingFile(handle, on_bytes),  # type: ignore[arg-type]
                        resume_size=have,
                        headers=headers,
                        expected_size=file.size,
                        displayed_filename=file.path,
                        **extra,
                    )
                return
            except StoreError as exc:
                now = partial.stat().st_size if partial.exists() else 0
                failures = 0 if now > before else failures + 1
                if not isinstance(exc.__cause__, _transport_errors()) or failures >= TRANSFER_ATTEMPTS:
                    raise StoreError(f"{exc}; what arrived is kept and the next download resumes it") from exc
                logger.warning(
                    "transfer of %s/%s broke off (%s); resuming", repo_id, file.path, exc.__cause__
                )
                time.sleep(RETRY_PAUSE_S * failures)
            except OSError as exc:
                if exc.errno == errno.ENOSPC:
                    raise disk_error(exc, f"downloading {repo_id}/{file.path} into {partial.parent}") from exc
                if exc.errno is not None:
                    raise disk_error(exc, f"writing {partial}") from exc
                # huggingface_hub's size check ("Consistency check failed"): the server sent too little.
                raise StoreError(
                    f"the download of {repo_id}/{file.path} ended early ({exc}); run it again to resume"
                ) from exc


@contextlib.contextmanager
def _open_partial(path: Path) -> Iterator[BinaryIO]:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = path.open("r+b") if path.exists() else path.open("wb")
    try:
        handle.seek(0, 2)
        yield handle
    finally:
        handle.close()


def _field(value: Any, name: str) -> Any:
    """A field of huggingface_hub's BlobLfsInfo (a dict subclass in some versions, an object in others)."""
    if isinstance(value, dict) and name in value:
        return value[name]
    return getattr(value, name, None)

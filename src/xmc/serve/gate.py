"""What stands in front of the routes: API keys and the size of a request's body.

A pure ASGI middleware, so that it decides before anything reads the body. A request it refuses
still has its body read and thrown away (up to ``max_drain`` bytes) before the answer goes out:
a client that writes its whole body before reading (Python's ``urllib``, for one) would otherwise
have the connection closed under it with data unread, which the kernel turns into a reset, and
would never see the 401 or 413. A client that sent ``Expect: 100-continue`` has not sent its body
and will not, so there is nothing to drain.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path

from xmc.exceptions import XMCError

# Routes any client may call: liveness and readiness for orchestrators, the static page (it holds
# no model data and is where a person types the key) and the API's description.
PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/", "/docs", "/openapi.json", "/docs/oauth2-redirect"})
KEYS_ENV = "XMC_API_KEYS"
MIN_KEY_CHARS = 16


class ApiKeys:
    """A set of bearer keys, kept only as SHA-256 digests and checked in constant time: every key is
    compared, whatever matched, and each comparison is :func:`hmac.compare_digest` of equal-length
    digests, so the time of a check tells nothing about a key."""

    def __init__(self, keys: Iterable[str]):
        keys = list(keys)
        if not keys:
            raise XMCError("no API key given (an empty key file or variable)")
        for i, key in enumerate(keys):
            if len(key) < MIN_KEY_CHARS or any(c.isspace() for c in key):
                raise XMCError(f"API key {i + 1} is shorter than {MIN_KEY_CHARS} characters or holds a space; use "
                               "long random keys: python -c 'import secrets; print(secrets.token_urlsafe())'")
        self._digests = [hashlib.sha256(k.encode()).digest() for k in keys]

    def __len__(self) -> int:
        return len(self._digests)

    def __repr__(self) -> str:  # never the keys themselves, whatever logs this object
        return f"ApiKeys({len(self)} keys)"

    @classmethod
    def read(cls, path: str | os.PathLike | None = None, environ: dict | None = None) -> ApiKeys | None:
        """The keys of ``path`` (one a line; blank lines and ``#`` comments skipped) and of the
        ``XMC_API_KEYS`` variable (separated by commas or spaces); None when neither is given."""
        environ = os.environ if environ is None else environ
        keys: list[str] = []
        if path is not None:
            try:
                lines = Path(path).read_text(encoding="utf-8").splitlines()
            except (OSError, UnicodeDecodeError) as exc:
                raise XMCError(f"cannot read the API key file {path}: {exc}") from None
            keys += [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
            if not keys:
                raise XMCError(f"the API key file {path} holds no key")
        if environ.get(KEYS_ENV, "").strip():
            keys += environ[KEYS_ENV].replace(",", " ").split()
        return cls(keys) if path is not None or keys else None

    def accepts(self, authorization: str | None) -> bool:
        scheme, _, token = (authorization or "").strip().partition(" ")
        given = hashlib.sha256(token.strip().encode()).digest()
        matched = False
        for digest in self._digests:
            matched |= hmac.compare_digest(given, digest)
        return matched and scheme.lower() == "bearer"


class Gate:
    """ASGI middleware: 401 without a valid key (routes outside :data:`PUBLIC_PATHS`), 413 for a body
    over ``max_body`` bytes, whether its length is declared or not (a body sent without a length is
    read here, up to the limit, and handed on). ``on_reject(status)`` counts refusals."""

    def __init__(self, app, *, keys: ApiKeys | None, max_body: int, max_drain: int = 64 << 20,
                 on_reject: Callable[[int], None] | None = None):
        self.app, self.keys, self.max_body, self.max_drain = app, keys, max_body, max_drain
        self.on_reject = on_reject

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if self.keys is not None and scope["path"] not in PUBLIC_PATHS \
                and not self.keys.accepts(headers.get("authorization")):
            return await self._refuse(scope, receive, send, headers, 401, "a valid API key is required: send the "
                                      "header 'Authorization: Bearer KEY'", {"www-authenticate": 'Bearer realm="xmc"'})
        length = headers.get("content-length")
        if length is not None:
            if not length.isdigit() or int(length) > self.max_body:
                return await self._refuse(scope, receive, send, headers, 413, self._too_large())
            return await self.app(scope, receive, send)
        if "chunked" not in headers.get("transfer-encoding", "").lower():
            return await self.app(scope, receive, send)
        body, complete = await _read(receive, self.max_body)
        if not complete:
            return await self._refuse(scope, receive, send, headers, 413, self._too_large())
        return await self.app(scope, _replay(body, receive), send)

    def _too_large(self) -> str:
        return f"the request body is larger than {self.max_body} bytes"

    async def _refuse(self, scope, receive, send, headers: dict, status: int, message: str,
                      extra: dict[str, str] | None = None) -> None:
        drained = True
        if "100-continue" not in headers.get("expect", "").lower():
            length = headers.get("content-length", "")
            if not (length.isdigit() and int(length) > self.max_drain):
                drained = (await _read(receive, self.max_drain, keep=False))[1]
            else:
                drained = False
        if self.on_reject is not None:
            self.on_reject(status)
        body = json.dumps({"error": message}).encode()
        out = {"content-type": "application/json", "content-length": str(len(body)), **(extra or {})}
        if not drained:  # the rest of the body is still coming: say so, rather than have the close look like a crash
            out["connection"] = "close"
        await send({"type": "http.response.start", "status": status,
                    "headers": [(k.encode(), v.encode()) for k, v in out.items()]})
        await send({"type": "http.response.body", "body": body})


async def _read(receive, limit: int, keep: bool = True) -> tuple[bytes, bool]:
    """The body (when ``keep``) and whether it ended within ``limit`` bytes (a client that went away
    counts as ended: there is nothing more to read)."""
    parts, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"".join(parts), True
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return b"", False
        if keep:
            parts.append(chunk)
        if not message.get("more_body", False):
            return b"".join(parts), True


def _replay(body: bytes, receive):
    sent = False

    async def replay():
        nonlocal sent
        if sent:
            return await receive()  # after the body: only a disconnect can come
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay

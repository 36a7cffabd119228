"""`webhooks.yaml` beside the sequences: the endpoints kept in git, checked like a sequence
file (each problem with file, line and field).

```yaml
endpoints:
  - url: https://crm.example.com/hooks/drip
    events: [contact.subscribed, contact.unsubscribed]
    secret_env: DRIP_WEBHOOK_CRM_SECRET   # the variable holding the whsec_... secret
```

A URL must be https, except in development, where http to a loopback address is
accepted for a receiver on the same machine. The secret itself never appears in the file.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, ValidationError, ValidationInfo, field_validator

from drip.errors import Problem, SequenceError, WebhookConfigError
from drip.sequences.loader import (
    _field_name,
    _line_of,
    read_yaml,
)
from drip.webhooks.events import EVENT_TYPES

#: The file's name, in the sequences folder.
ENDPOINTS_FILE = "webhooks.yaml"

#: An environment variable's name, as `secret_env` must give it.
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,199}$")

#: Hosts a development receiver may use over plain http.
LOOPBACK_NAMES = frozenset({"localhost"})


def check_url(url: str, *, development: bool) -> str:
    """The URL if drip may send to it; ValueError saying why not otherwise."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"{url!r} is not an http(s) URL with a host")
    if parts.username or parts.password:
        raise ValueError("a URL may not carry a user name or password")
    if parts.scheme == "http":
        if not development:
            raise ValueError("must be https (http is accepted only in development, to loopback)")
        if not _is_loopback(parts.hostname):
            raise ValueError("http is accepted only to a loopback address (127.0.0.1, ::1)")
    return url.strip()


def check_events(events: list[str]) -> list[str]:
    """The event types, deduplicated in order; ValueError naming an unknown one."""
    if not events:
        raise ValueError("name at least one event type")
    unknown = [e for e in events if e not in EVENT_TYPES]
    if unknown:
        raise ValueError(f"unknown event type {unknown[0]!r}; known: {', '.join(EVENT_TYPES)}")
    return list(dict.fromkeys(events))


def check_secret_env(name: str) -> str:
    """The variable's name; ValueError when it is not one."""
    if not ENV_NAME.match(name):
        raise ValueError(f"{name!r} is not an environment variable name")
    return name


def _is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class EndpointSpec(BaseModel):
    """One endpoint as the file gives it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str
    events: list[str]
    secret_env: str

    @field_validator("url")
    @classmethod
    def _url(cls, value: str, info: ValidationInfo) -> str:
        return check_url(value, development=bool((info.context or {}).get("development")))

    @field_validator("events")
    @classmethod
    def _events(cls, value: list[str]) -> list[str]:
        return check_events(value)

    @field_validator("secret_env")
    @classmethod
    def _secret_env(cls, value: str) -> str:
        return check_secret_env(value)


class EndpointsFile(BaseModel):
    """The whole file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    endpoints: list[EndpointSpec] = []


@dataclass(frozen=True)
class FileEndpoints:
    """The endpoints `webhooks.yaml` declares (none when there is no file)."""

    endpoints: tuple[EndpointSpec, ...]
    path: Path | None


def load_endpoints_file(sequences_dir: Path, *, development: bool) -> FileEndpoints:
    """Read `webhooks.yaml` in `sequences_dir`; WebhookConfigError lists every problem."""
    path = sequences_dir / ENDPOINTS_FILE
    if not path.exists():
        return FileEndpoints((), None)
    name = str(path)
    try:
        root, data = read_yaml(path, what="webhooks.yaml")
    except SequenceError as exc:
        raise WebhookConfigError(exc.problems) from exc
    if data is None:
        return FileEndpoints((), path)
    try:
        parsed = EndpointsFile.model_validate(data, context={"development": development})
    except ValidationError as exc:
        raise WebhookConfigError(
            [
                Problem(name, _line_of(root, err["loc"]), _field_name(err["loc"]), _message(err))
                for err in exc.errors()
            ]
        ) from exc
    urls = [e.url for e in parsed.endpoints]
    repeated = [i for i, url in enumerate(urls) if url in urls[:i]]
    if repeated:
        raise WebhookConfigError(
            [
                Problem(name, _line_of(root, ("endpoints", i, "url")), "url", "is listed twice")
                for i in repeated
            ]
        )
    return FileEndpoints(tuple(parsed.endpoints), path)


def _message(error: Any) -> str:
    if error["type"] == "extra_forbidden":
        return "is not a field of webhooks.yaml (url, events, secret_env)"
    return str(error["msg"]).removeprefix("Value error, ")

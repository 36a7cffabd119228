"""`Authorization: Bearer <key>` on every `/v1` route: 401 (with `WWW-Authenticate`) for a
missing, wrong or revoked key, 403 naming the scope a valid key lacks (`drip.keys.verify`)."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Depends, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from drip.api.deps import get_runtime
from drip.db import transaction, utcnow
from drip.keys.scopes import Scope
from drip.keys.verify import KeyRefused, ScopeMissing, authenticate
from drip.models import ApiKey
from drip.runtime import Runtime

#: The security scheme in the OpenAPI document; missing credentials are answered here.
BEARER = HTTPBearer(auto_error=False, description="An API key from `drip keys create`")


def require(scope: Scope) -> Callable[..., ApiKey]:
    """A dependency that lets a request through only with an active key holding `scope`."""

    def check(
        credentials: HTTPAuthorizationCredentials | None = Depends(BEARER),
        runtime: Runtime = Depends(get_runtime),
    ) -> ApiKey:
        token = credentials.credentials if credentials is not None else ""
        try:
            with transaction(runtime.sessions) as session:
                return authenticate(session, token, scope=scope, now=utcnow())
        except KeyRefused as exc:
            raise HTTPException(
                401, str(exc), headers={"WWW-Authenticate": 'Bearer realm="drip"'}
            ) from exc
        except ScopeMissing as exc:
            raise HTTPException(
                403,
                str(exc),
                headers={
                    "WWW-Authenticate": (
                        f'Bearer realm="drip", error="insufficient_scope", scope="{scope.value}"'
                    )
                },
            ) from exc

    return check

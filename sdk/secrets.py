"""Secret references, resolved behind one interface: ``env://``, ``file://`` and ``vault://``.

A reference names where a secret lives; :func:`resolve_secret` reads it. Every resolved value is
registered with :mod:`fleetforge.redaction` before it is returned, so from then on this process
masks it wherever text reaches an event, a log line, an error or tool output. Errors name the
reference and what went wrong, never the value.

``vault://MOUNT/PATH#KEY`` reads key ``KEY`` of the secret at ``PATH`` in the KV version 2 engine
mounted at ``MOUNT`` (the first path segment, as ``vault kv get MOUNT/PATH`` reads it) of
HashiCorp Vault or OpenBao: ``GET $VAULT_ADDR/v1/MOUNT/data/PATH`` with ``X-Vault-Token:
$VAULT_TOKEN``. ``BAO_ADDR`` / ``BAO_TOKEN`` are read when the ``VAULT_`` names are unset;
``VAULT_NAMESPACE`` (Enterprise namespaces) and ``VAULT_CACERT`` (a CA bundle for a private
certificate) are honoured. Mounts nested below one segment (``kv/team``) are not supported.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from fleetforge.errors import ContractError, UsageError
from fleetforge.redaction import register as register_secret

__all__ = ["SCHEMES", "Resolver", "resolve_secret"]

#: How long one Vault request may take, in seconds.
VAULT_TIMEOUT_S = 10.0

#: A resolver reads the location part of a reference (what follows ``scheme://``).
Resolver = Callable[[str, str, Mapping[str, str]], str]


def _env(ref: str, name: str, environ: Mapping[str, str]) -> str:
    if name not in environ:
        raise ContractError(f"secret {ref} is not set")
    return environ[name]


def _file(ref: str, path: str, environ: Mapping[str, str]) -> str:
    try:
        return Path(path).read_text(encoding="utf-8").rstrip("\n")
    except OSError as exc:
        raise ContractError(f"secret {ref} cannot be read: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ContractError(f"secret {ref} is not UTF-8 text") from exc


def _setting(environ: Mapping[str, str], name: str) -> str | None:
    return environ.get(f"VAULT_{name}") or environ.get(f"BAO_{name}") or None


def _vault(ref: str, location: str, environ: Mapping[str, str]) -> str:
    import httpx

    path, _, key = location.partition("#")
    mount, _, rest = path.strip("/").partition("/")
    if not mount or not rest or not key:
        raise ContractError(f"secret {ref} must read vault://MOUNT/PATH#KEY")
    addr = _setting(environ, "ADDR")
    token = _setting(environ, "TOKEN")
    if addr is None:
        raise ContractError(f"secret {ref}: set VAULT_ADDR (or BAO_ADDR) to the Vault server")
    if token is None:
        raise ContractError(f"secret {ref}: set VAULT_TOKEN (or BAO_TOKEN) to read it")
    register_secret(token)
    headers = {"X-Vault-Token": token}
    if namespace := _setting(environ, "NAMESPACE"):
        headers["X-Vault-Namespace"] = namespace
    url = f"{addr.rstrip('/')}/v1/{mount}/data/{rest}"
    verify: Any = _setting(environ, "CACERT") or True
    try:
        with httpx.Client(timeout=VAULT_TIMEOUT_S, verify=verify) as client:
            response = client.get(url, headers=headers)
    except httpx.HTTPError as exc:
        raise ContractError(
            f"secret {ref}: cannot reach Vault at {addr} ({type(exc).__name__})"
        ) from None
    if response.status_code == 404:
        raise ContractError(f"secret {ref}: no secret at {mount}/{rest} (KV v2 mount '{mount}')")
    if response.status_code == 403:
        raise ContractError(f"secret {ref}: permission denied (the token's policy does not "
                            f"allow reading {mount}/data/{rest})")  # fmt: skip
    if response.status_code != 200:
        raise ContractError(f"secret {ref}: Vault answered HTTP {response.status_code}")
    try:
        data = response.json()["data"]["data"]
    except (ValueError, KeyError, TypeError):
        raise ContractError(f"secret {ref}: Vault's answer is not a KV v2 secret") from None
    if not isinstance(data, dict) or key not in data:
        raise ContractError(f"secret {ref}: the secret at {mount}/{rest} has no key '{key}'")
    value = data[key]
    if not isinstance(value, str):
        raise ContractError(f"secret {ref}: key '{key}' is not a string")
    return value


#: The resolver of each scheme.
SCHEMES: dict[str, Resolver] = {"env": _env, "file": _file, "vault": _vault}


def resolve_secret(ref: str, environ: Mapping[str, str] | None = None) -> SecretStr:
    """Read the secret ``ref`` names. The value comes back wrapped (``repr``, ``str`` and JSON
    show stars) and is masked from now on wherever this process writes text."""
    scheme, sep, location = ref.partition("://")
    resolver = SCHEMES.get(scheme) if sep else None
    if resolver is None:
        raise UsageError(
            f"secret reference '{scheme}://...' has no resolver: use one of "
            + ", ".join(f"{name}://" for name in SCHEMES)
        )
    value = resolver(ref, location, os.environ if environ is None else environ)
    register_secret(value)
    return SecretStr(value)

"""The fleet's signing keys and its trust store (Ed25519, via ``cryptography``).

Under ``FLEETFORGE_HOME/keys/``:

- ``trust.json``: the trust store, public. One entry per key ever used: its key id (the SHA-256
  of the raw public key, ``ed25519:<hex>``), a name (``fleet``, or one per ``serve`` process),
  the public key (hex) and a validity window. ``not_before`` .. ``not_after`` is when the key
  may sign; rotation closes the old key's window (``not_after`` = the moment of rotation) but
  keeps the entry, so what it signed while it was current still verifies.
- ``<name>.key``: the private key of the current key of that name (PKCS#8 PEM, file mode 0600;
  a key file that others may read is refused). Rotation deletes the old one.

A process may instead take its signing key from a secret ref (``FLEETFORGE_SIGNING_KEY``:
``env://NAME`` or ``file://PATH``, holding the PEM); its public key must be in the trust store
for verification to accept what it signs.

No private key material ever leaves this module except into a signature: :class:`SigningKey`
has no ``repr`` of its key, and the PEM read from a secret ref is registered with the redactor.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from fleetforge.errors import ContractError, NotFoundError, UsageError
from fleetforge.redaction import get_logger

__all__ = [
    "KeyEntry",
    "SigningKey",
    "TrustStore",
    "export_public",
    "init_key",
    "key_id_of",
    "keys_dir",
    "load_signing_key",
    "rotate_key",
]

log = get_logger("fleetforge.trust")
TRUST_FILE = "trust.json"
TRUST_FORMAT = "fleetforge-trust"
SIGNING_KEY_ENV = "FLEETFORGE_SIGNING_KEY"
KEY_NAME_ENV = "FLEETFORGE_KEY_NAME"


def keys_dir(home: Path) -> Path:
    return home / "keys"


def _raw(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id_of(public: Ed25519PublicKey | bytes) -> str:
    """``ed25519:`` + the SHA-256 (hex) of the raw 32-byte public key."""
    raw = public if isinstance(public, bytes) else _raw(public)
    return "ed25519:" + hashlib.sha256(raw).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse(value: Any, where: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        raise ContractError(f"{where}: not a timestamp: {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@dataclass(frozen=True)
class KeyEntry:
    """One trusted public key and the window in which it may sign."""

    key_id: str
    name: str
    public_key: str  # hex of the raw 32 bytes
    not_before: datetime | None = None  # None: from the fleet's beginning (its first key)
    not_after: datetime | None = None  # end of its signing window; None = still current

    def public(self) -> Ed25519PublicKey:
        return Ed25519PublicKey.from_public_bytes(bytes.fromhex(self.public_key))

    def valid_at(self, at: datetime) -> bool:
        after_start = self.not_before is None or self.not_before <= at
        return after_start and (self.not_after is None or at < self.not_after)

    def to_json(self) -> dict[str, Any]:
        return {
            "key_id": self.key_id,
            "name": self.name,
            "algorithm": "ed25519",
            "public_key": self.public_key,
            "not_before": _iso(self.not_before),
            "not_after": _iso(self.not_after),
        }

    @classmethod
    def from_json(cls, value: Mapping[str, Any], where: str = "trust store") -> KeyEntry:
        try:
            raw = bytes.fromhex(str(value["public_key"]))
            entry = cls(
                key_id=str(value["key_id"]),
                name=str(value.get("name", "")),
                public_key=raw.hex(),
                not_before=_parse(value.get("not_before"), where),
                not_after=_parse(value.get("not_after"), where),
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise ContractError(f"{where}: a key entry is malformed ({exc})") from None
        if len(raw) != 32 or key_id_of(raw) != entry.key_id:
            raise ContractError(f"{where}: key {entry.key_id} does not match its public key")
        return entry


@dataclass
class TrustStore:
    """The trusted public keys, by key id."""

    keys: dict[str, KeyEntry] = field(default_factory=dict)

    def add(self, entry: KeyEntry) -> None:
        self.keys[entry.key_id] = entry

    def to_json(self) -> dict[str, Any]:
        return {
            "format": TRUST_FORMAT,
            "version": 1,
            "keys": [k.to_json() for k in self.keys.values()],
        }

    @classmethod
    def from_json(cls, value: Any, where: str = "trust store") -> TrustStore:
        if isinstance(value, dict) and "keys" in value:
            value = value["keys"]
        if not isinstance(value, list):
            raise ContractError(f"{where}: expected a list of keys")
        return cls({(e := KeyEntry.from_json(v, where)).key_id: e for v in value})

    @classmethod
    def load(cls, path: Path) -> TrustStore:
        """The trust store in ``path`` (empty when the file does not exist)."""
        if not path.exists():
            return cls()
        try:
            value = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise UsageError(f"cannot read the trust store {path}: {exc}") from None
        return cls.from_json(value, str(path))

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=2) + "\n", encoding="utf-8")
        tmp.replace(path)


class SigningKey:
    """A private Ed25519 key with its key id; signs, and never shows the key."""

    __slots__ = ("_private", "key_id", "name")

    def __init__(self, private: Ed25519PrivateKey, name: str = "fleet") -> None:
        self._private = private
        self.key_id = key_id_of(private.public_key())
        self.name = name

    @classmethod
    def generate(cls, name: str = "fleet") -> SigningKey:
        return cls(Ed25519PrivateKey.generate(), name)

    @property
    def private_key(self) -> Ed25519PrivateKey:
        """The ``cryptography`` key, for a DSSE signer (never serialise it)."""
        return self._private

    def public(self) -> Ed25519PublicKey:
        return self._private.public_key()

    def entry(self, not_before: datetime | None = None) -> KeyEntry:
        return KeyEntry(self.key_id, self.name, _raw(self.public()).hex(), not_before)

    def __repr__(self) -> str:
        return f"SigningKey({self.key_id!r}, name={self.name!r})"

    def _pem(self) -> bytes:
        return self._private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


def _key_file(home: Path, name: str) -> Path:
    if not name or not all(c.isalnum() or c in "-_." for c in name) or name.startswith("."):
        raise UsageError(f"key name {name!r}: use letters, digits, '-', '_' and '.'")
    return keys_dir(home) / f"{name}.key"


def _write_private(path: Path, key: SigningKey, *, exclusive: bool = False) -> bool:
    """Write the key file (mode 0600, atomically). ``exclusive``: only if there is none yet
    (two processes creating the fleet key at once: one wins); returns whether it was written."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # one temporary file per writer (process and thread: a service's first receipts can come
    # on several threads at once, each creating the key; one link wins)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, key._pem())
    finally:
        os.close(fd)
    if not exclusive:
        tmp.replace(path)
        return True
    try:
        os.link(tmp, path)
    except FileExistsError:
        return False
    finally:
        tmp.unlink()
    return True


def _from_pem(pem: bytes, where: str, name: str) -> SigningKey:
    try:
        private = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        raise ContractError(f"{where} does not hold an unencrypted PEM private key") from None
    if not isinstance(private, Ed25519PrivateKey):
        raise ContractError(f"{where} holds a key that is not Ed25519")
    return SigningKey(private, name)


def _read_private(path: Path, name: str) -> SigningKey:
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ContractError(
            f"the key file {path} is readable by others (mode {stat.S_IMODE(mode):04o}); "
            f"run: chmod 600 {path}"
        )
    return _from_pem(path.read_bytes(), f"the key file {path}", name)


def init_key(home: Path, name: str = "fleet") -> tuple[SigningKey, bool]:
    """The key ``name`` under ``home``, created (and trusted) when missing. (key, created)."""
    path = _key_file(home, name)
    if path.exists():
        return _read_private(path, name), False
    key = SigningKey.generate(name)
    if not _write_private(path, key, exclusive=True):
        return _read_private(path, name), False
    trust_path = keys_dir(home) / TRUST_FILE
    trust = TrustStore.load(trust_path)
    # a name's first key has an open window (it signs from the fleet's start); a later one
    # (another serve process's, or after rotation) from the moment it was made
    first = not any(e.name == name for e in trust.keys.values())
    trust.add(key.entry(None if first else _now()))
    trust.save(trust_path)
    return key, True


def rotate_key(home: Path, name: str = "fleet") -> tuple[SigningKey, str | None]:
    """A new current key for ``name``: the old one's signing window closes now, its public key
    stays trusted for what it signed; its private key is deleted. (new key, old key id)."""
    path = _key_file(home, name)
    trust_path = keys_dir(home) / TRUST_FILE
    trust = TrustStore.load(trust_path)
    old = _read_private(path, name) if path.exists() else None
    now = _now()
    if old is not None and old.key_id in trust.keys:
        trust.add(replace(trust.keys[old.key_id], not_after=now))
    key = SigningKey.generate(name)
    trust.add(key.entry(now))
    trust.save(trust_path)
    _write_private(path, key)
    return key, None if old is None else old.key_id


def export_public(home: Path) -> dict[str, Any]:
    """The trust store as JSON (public keys and windows only)."""
    return TrustStore.load(keys_dir(home) / TRUST_FILE).to_json()


def load_signing_key(
    home: Path, environ: Mapping[str, str] | None = None, *, create: bool = True
) -> SigningKey:
    """The key this process signs with: the secret ref in ``FLEETFORGE_SIGNING_KEY`` if set,
    else ``HOME/keys/<FLEETFORGE_KEY_NAME or fleet>.key`` (created on first use when
    ``create``; the log says where, at INFO)."""
    env = os.environ if environ is None else environ
    name = env.get(KEY_NAME_ENV) or "fleet"
    ref = env.get(SIGNING_KEY_ENV)
    if ref:
        from fleetforge.contracts import FleetSecretRef

        secret = FleetSecretRef(ref=ref).resolve(dict(env))
        return _from_pem(secret.get_secret_value().encode(), f"the secret {ref}", name)
    path = _key_file(home, name)
    if not path.exists() and not create:
        raise NotFoundError(f"no signing key {name!r} in {keys_dir(home)}: fleetforge keys init")
    key, created = init_key(home, name)
    if created:
        log.info(
            "created the fleet signing key %s in %s (trusted in %s)",
            key.key_id,
            path,
            keys_dir(home) / TRUST_FILE,
        )
    return key

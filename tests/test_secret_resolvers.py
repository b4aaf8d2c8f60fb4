"""Secret references behind one resolver interface (issue 23): env://, file:// and vault://.

The Vault here is a fake KV v2 server on loopback that answers the way Vault and OpenBao do
(``GET /v1/MOUNT/data/PATH`` with ``X-Vault-Token``); the values it serves are sentinels that must
never reach an event, a log line, an error or tool output.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from fleetforge import armory, redaction
from fleetforge.contracts import FleetSecretRef
from fleetforge.errors import ContractError, FleetForgeError, UsageError
from fleetforge.secrets import resolve_secret

from .test_mcp_transports import free_port

SERVER = str(Path(__file__).with_name("mcp_test_server.py"))
TOKEN = "hvs.fake-vault-token-0123456789"
SENTINEL = "vault-sentinel-value-5f1d2c3b4a"
SECRETS = {"secret/app/db": {"password": SENTINEL, "port": 5432}, "kv/other": {"k": "v" * 20}}


class FakeVault(BaseHTTPRequestHandler):
    seen: list[dict[str, Any]] = []

    def do_GET(self) -> None:
        FakeVault.seen.append({"path": self.path, "headers": dict(self.headers)})
        if self.headers.get("X-Vault-Token") != TOKEN:
            return self._answer(403, {"errors": ["permission denied"]})
        parts = self.path.removeprefix("/v1/").split("/")
        if len(parts) < 3 or parts[1] != "data":
            return self._answer(404, {"errors": []})
        data = SECRETS.get("/".join([parts[0], *parts[2:]]))
        if data is None:
            return self._answer(404, {"errors": []})
        return self._answer(200, {"data": {"data": data, "metadata": {"version": 3}}})

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def vault(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeVault)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    addr = f"http://127.0.0.1:{server.server_address[1]}"
    for name in ("VAULT_ADDR", "VAULT_TOKEN", "VAULT_NAMESPACE", "BAO_ADDR", "BAO_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("VAULT_ADDR", addr)
    monkeypatch.setenv("VAULT_TOKEN", TOKEN)
    FakeVault.seen.clear()
    yield addr
    server.shutdown()
    server.server_close()
    thread.join()


def test_vault_reads_a_kv_v2_key_and_masks_it_from_then_on(
    vault: str, caplog: pytest.LogCaptureFixture
) -> None:
    value = FleetSecretRef(ref="vault://secret/app/db#password").resolve()
    assert value.get_secret_value() == SENTINEL
    assert SENTINEL not in repr(value)
    assert SENTINEL not in str(value)
    assert FakeVault.seen[-1]["path"] == "/v1/secret/data/app/db"
    log = redaction.get_logger("fleetforge.test")
    with caplog.at_level(logging.INFO, logger="fleetforge.test"):
        log.info("connecting with %s", SENTINEL)
    assert SENTINEL not in caplog.text
    assert redaction.redact(f"x {TOKEN} y") == "x *** y"  # the Vault token is masked too


def test_vault_sends_the_namespace_and_openbao_names_work(
    vault: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VAULT_ADDR")
    monkeypatch.delenv("VAULT_TOKEN")
    env = {"BAO_ADDR": vault, "BAO_TOKEN": TOKEN, "VAULT_NAMESPACE": "team-a"}
    assert resolve_secret("vault://kv/other#k", env).get_secret_value() == "v" * 20
    assert FakeVault.seen[-1]["headers"]["X-Vault-Namespace"] == "team-a"


GOOD = {"VAULT_ADDR": "ADDR", "VAULT_TOKEN": TOKEN}


@pytest.mark.parametrize(
    ("ref", "env", "message"),
    [
        ("vault://secret/app/db#password", {"VAULT_TOKEN": TOKEN}, "set VAULT_ADDR"),
        ("vault://secret/app/db#password", {"VAULT_ADDR": "ADDR"}, "set VAULT_TOKEN"),
        ("vault://secret/app/db#password", GOOD | {"VAULT_TOKEN": "wrong"}, "permission denied"),
        ("vault://secret/app/nope#password", GOOD, "no secret at secret/app/nope"),
        ("vault://secret/app/db#user", GOOD, "has no key 'user'"),
        ("vault://secret/app/db#port", GOOD, "key 'port' is not a string"),
        ("vault://secret#password", GOOD, "must read vault://MOUNT/PATH#KEY"),
    ],
)
def test_vault_errors_say_what_is_wrong_and_never_the_value(
    vault: str, ref: str, env: dict[str, str], message: str
) -> None:
    environ = {k: vault if v == "ADDR" else v for k, v in env.items()}
    with pytest.raises(ContractError) as caught:
        resolve_secret(ref, environ)
    assert message in caught.value.message
    assert ref in caught.value.message
    assert SENTINEL not in caught.value.message


def test_an_unreachable_vault_is_a_clear_error() -> None:
    env = {"VAULT_ADDR": f"http://127.0.0.1:{free_port()}", "VAULT_TOKEN": TOKEN}
    with pytest.raises(ContractError, match=r"cannot reach Vault at http://127\.0\.0\.1"):
        resolve_secret("vault://secret/app/db#password", env)


def test_env_and_file_refs_and_unknown_schemes(tmp_path: Path) -> None:
    assert resolve_secret("env://X_REF", {"X_REF": "env-sentinel-value-1"}).get_secret_value()
    with pytest.raises(ContractError, match="env://MISSING is not set"):
        resolve_secret("env://MISSING", {})
    secret = tmp_path / "s"
    secret.write_text("file-sentinel-value-2\n")
    assert resolve_secret(f"file://{secret}", {}).get_secret_value() == "file-sentinel-value-2"
    secret.write_bytes(b"\xff\xfe")
    with pytest.raises(ContractError, match="is not UTF-8"):
        resolve_secret(f"file://{secret}", {})
    with pytest.raises(UsageError, match=r"use one of env://, file://, vault://"):
        resolve_secret("aws://x", {})


@pytest.mark.anyio
async def test_a_pack_credential_from_vault_reaches_the_server_and_nothing_else(
    vault: str,
) -> None:
    pack = armory.parse_pack(
        {
            "name": "vaulted",
            "version": "1",
            "servers": [
                {
                    "name": "s",
                    "command": sys.executable,
                    "args": [SERVER, "--print-env"],
                    "env": {"TOOL_SECRET": "vault://secret/app/db#password"},
                }
            ],
        },
        source="test",
    )
    with pytest.raises(FleetForgeError) as caught:
        async with armory.open([pack]):
            pass
    printed = caught.value.message
    assert "TOOL_SECRET=***" in printed  # the server got it; the error shows it masked
    assert SENTINEL not in printed
    assert TOKEN not in printed
    assert "VAULT_TOKEN=" not in printed

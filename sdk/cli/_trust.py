"""``fleetforge keys init|list|rotate|export-public``, ``fleetforge verify`` and
``fleetforge export RUN --bundle FILE | --aibom FILE`` (the trust plane, docs/trust.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from fleetforge.cli._console import err, out, print_json, text
from fleetforge.cli._context import globals_of
from fleetforge.cli._errors import reporting
from fleetforge.errors import ErrorDetail, UsageError, VerificationError

if TYPE_CHECKING:
    from fleetforge.fleet.trust.keys import TrustStore
    from fleetforge.fleet.trust.verify import Failure

__all__ = ["export", "keys_app", "verify", "verify_run"]

keys_app = typer.Typer(
    help="The fleet's signing keys and its trust store (FLEETFORGE_HOME/keys).",
    no_args_is_help=True,
)

Name = Annotated[
    str,
    typer.Option(
        "--name", help="Key name: 'fleet', or one per serve process (FLEETFORGE_KEY_NAME)."
    ),
]


def _home() -> Path:
    from fleetforge.fleet.settings import fleet_home

    return fleet_home()


@keys_app.command("init")
def keys_init(name: Name = "fleet") -> None:
    """Create the signing key NAME (mode 0600) and trust it; an existing key is kept."""
    from fleetforge.fleet.trust.keys import init_key, keys_dir

    with reporting(out, err):
        key, created = init_key(_home(), name)
    verb = "created" if created else "exists:"
    out.print(text(f"{verb} {name} key {key.key_id} in {keys_dir(_home())}"))


@keys_app.command("rotate")
def keys_rotate(name: Name = "fleet") -> None:
    """A new key for NAME; the old one stops signing now but stays trusted for what it signed."""
    from fleetforge.fleet.trust.keys import rotate_key

    with reporting(out, err):
        key, old = rotate_key(_home(), name)
    if old:
        out.print(text(f"rotated {name}: {old} -> {key.key_id} (the old key verifies until ever)"))
    else:
        out.print(text(f"created {name} key {key.key_id}"))


@keys_app.command("list")
def keys_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """The trusted keys: id, name, signing window, and whether this home holds its private key."""
    from fleetforge.fleet.trust.keys import TRUST_FILE, TrustStore, keys_dir

    with reporting(out, err, as_json=as_json):
        trust = TrustStore.load(keys_dir(_home()) / TRUST_FILE)
    rows = []
    for entry in trust.keys.values():
        private = (keys_dir(_home()) / f"{entry.name}.key").exists() and entry.not_after is None
        rows.append(entry.to_json() | {"signing": private})
    if as_json:
        print_json({"keys": rows})
        return
    table = Table(box=None, pad_edge=False)
    for column in ("key id", "name", "not before", "not after", "signing here"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            text(row["key_id"]),
            text(row["name"]),
            row["not_before"] or "-",
            row["not_after"] or "-",
            "yes" if row["signing"] else "",
        )
    out.print(table)


@keys_app.command("export-public")
def keys_export_public(
    file: Annotated[str, typer.Argument(help="File to write ('-' = stdout).")] = "-",
) -> None:
    """Write the trust store (public keys and windows only) for verifiers elsewhere."""
    from fleetforge.fleet.trust.keys import export_public

    body = json.dumps(export_public(_home()), indent=2) + "\n"
    if file == "-":
        typer.echo(body, nl=False)
        return
    with reporting(out, err):
        try:
            Path(file).write_text(body, encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot write {file}: {exc.strerror}", path=file) from None
    err.print(text(f"wrote the trust store to {file}"))


def _trust(path: str | None) -> TrustStore | None:
    from fleetforge.fleet.trust.keys import TRUST_FILE, TrustStore, keys_dir

    if path is not None:
        if not Path(path).is_file():
            raise UsageError(f"no trust store at {path}", path=path)
        return TrustStore.load(Path(path))
    local = keys_dir(_home()) / TRUST_FILE
    return TrustStore.load(local) if local.exists() else None


TrustOption = Annotated[
    str | None,
    typer.Option(
        "--trust",
        help="Trust store to verify against (from 'keys export-public'). Default: "
        "$FLEETFORGE_HOME/keys/trust.json; a bundle verified where there is none is checked "
        "against the keys it carries (which proves integrity, not origin).",
    ),
]


def verify_run(
    store_url: str, artifacts_root: Path, run_id: str, trust: TrustStore | None = None
) -> list[Failure]:
    """The failures of ``run_id`` in the store (against the local trust store by default)."""
    from fleetforge.fleet.artifacts import ArtifactStore
    from fleetforge.fleet.store import open_store
    from fleetforge.fleet.trust.bundle import build_bundle
    from fleetforge.fleet.trust.keys import TrustStore
    from fleetforge.fleet.trust.verify import verify_bundle

    trust = trust or _trust(None) or TrustStore()
    with open_store(store_url, create=False) as store:
        bundle = build_bundle(store, run_id, artifacts=ArtifactStore(artifacts_root), trust=trust)
    return verify_bundle(bundle, trust)


def verify(
    ctx: typer.Context,
    target: Annotated[str, typer.Argument(help="A run id (in the store) or a bundle file.")],
    trust_file: TrustOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print {ok, failures} as JSON.")] = False,
) -> None:
    """Check a run offline: receipt chain, signatures and key windows, artifact digests, the
    signed chain head, and that projections match a replay. Exit 1 with each failure."""
    from fleetforge.fleet.trust.bundle import build_bundle, load_bundle
    from fleetforge.fleet.trust.verify import verify_bundle

    with reporting(out, err, as_json=as_json):
        trust = _trust(trust_file)
        if Path(target).is_file():
            bundle = load_bundle(Path(target))
            if trust is None:
                trust = bundle.trust
                err.print(
                    text(
                        f"no local trust store: checking against the {len(trust.keys)} keys "
                        "the bundle carries (pin them with --trust FILE)"
                    )
                )
        else:
            from fleetforge.fleet.artifacts import ArtifactStore
            from fleetforge.fleet.store import open_store
            from fleetforge.fleet.trust.keys import TrustStore

            g = globals_of(ctx)
            trust = trust or TrustStore()
            with open_store(g.store_url, create=False) as store:
                bundle = build_bundle(
                    store, target, artifacts=ArtifactStore(g.artifacts_root), trust=trust
                )
        failures = verify_bundle(bundle, trust)
        if failures:
            if not as_json:  # one whole line each (the error's detail table would cut them)
                for failure in failures:
                    out.print(text(str(failure)), soft_wrap=True)
            raise VerificationError(
                f"verify {bundle.run_id}: {len(failures)} failures",
                details=[ErrorDetail(f.where, f.message) for f in failures] if as_json else (),
                run_id=bundle.run_id,
            )
    receipts = sum(1 for e in bundle.events if e.type == "receipt_recorded")
    if as_json:
        print_json(
            {
                "ok": True,
                "run_id": bundle.run_id,
                "receipts": receipts,
                "events": len(bundle.events),
                "failures": [],
            }
        )
        return
    out.print(
        text(
            f"fleetforge verify {bundle.run_id}: ok ({receipts} signed receipts, "
            f"{len(bundle.events)} events, {len(bundle.artifacts)} artifacts)"
        )
    )


def export(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help="The run.")],
    bundle_file: Annotated[
        str | None, typer.Option("--bundle", help="Write the run's bundle (one JSON file).")
    ] = None,
    aibom_file: Annotated[
        str | None,
        typer.Option("--aibom", help="Write a CycloneDX 1.6 JSON BOM of what the run used."),
    ] = None,
) -> None:
    """Export a run for offline checks: --bundle FILE (events, signed receipts, artifacts,
    projection rows, trusted public keys) and/or --aibom FILE (CycloneDX)."""
    from fleetforge.fleet.artifacts import ArtifactStore
    from fleetforge.fleet.store import open_store
    from fleetforge.fleet.trust.bundle import build_bundle
    from fleetforge.fleet.trust.keys import TrustStore

    if bundle_file is None and aibom_file is None:
        raise typer.BadParameter("give --bundle FILE and/or --aibom FILE")
    g = globals_of(ctx)
    with reporting(out, err):
        trust = _trust(None) or TrustStore()
        with open_store(g.store_url, create=False) as store:
            bundle = build_bundle(
                store, run_id, artifacts=ArtifactStore(g.artifacts_root), trust=trust
            )
        for path in (bundle_file, aibom_file):
            if path is not None and not Path(path).parent.is_dir():
                raise UsageError(f"cannot write {path}: no such directory", path=path)
        if bundle_file is not None:
            bundle.write(Path(bundle_file))
            err.print(text(f"wrote the bundle of {run_id} to {bundle_file}"))
        if aibom_file is not None:
            from fleetforge.fleet.trust.aibom import aibom_json

            Path(aibom_file).write_text(aibom_json(bundle), encoding="utf-8")
            err.print(text(f"wrote the AIBOM of {run_id} to {aibom_file}"))

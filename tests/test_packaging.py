"""A wheel built from the tree works in a clean environment (no file missing from it)."""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]

CHECK = """
import json, sys
from pathlib import Path
import fleetforge
from fleetforge import schemas, validate_run_spec
assert Path(fleetforge.__file__).is_relative_to(Path(sys.argv[1])), fleetforge.__file__
expected = sorted(json.loads(sys.argv[2]))
assert schemas.names() == expected, set(expected) ^ set(schemas.names())
for name in schemas.names():
    for example in schemas.load(name)["examples"]:
        schemas.validate(name, example)
spec = validate_run_spec(schemas.load("run_spec")["examples"][0])
print("ok", len(expected), spec.name)
"""


@pytest.mark.slow
def test_wheel_installs_and_loads_every_schema(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--quiet", "-w", str(dist), str(ROOT)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    # the data folders (SQL, packs) are declared: setuptools has nothing to warn about
    assert "absent from the" not in built.stderr, built.stderr
    assert "Warning" not in built.stderr, built.stderr
    [wheel] = dist.glob("fleetforge-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "fleetforge/py.typed" in names
    assert "fleetforge/schemas/run_spec.json" in names
    assert not any(n.startswith(("tests/", "examples/")) for n in names)

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
         "--no-index", "--quiet", str(wheel)],
        check=True, capture_output=True,
    )  # fmt: skip
    target = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip

    # The clean venv gets the wheel; its dependencies come from this environment's site-packages
    # on PYTHONPATH (which does not process .pth files, so the editable checkout stays invisible).
    deps = sysconfig.get_paths()["purelib"]
    env = {"PYTHONPATH": deps, "PATH": "/usr/bin:/bin"}
    source_names = sorted(p.stem for p in (ROOT / "schemas").glob("*.json"))
    result = subprocess.run(
        [python, "-c", CHECK, target, json.dumps(source_names)],
        capture_output=True, text=True, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"ok {len(source_names)} ")
    script = subprocess.run(
        [venv / "bin" / "fleetforge", "--version"], capture_output=True, text=True, env=env
    )
    assert script.stdout.strip() == "fleetforge 0.1.0", script.stderr

"""kodex installs as one package, `kodex`: nothing generic such as `api` or `rules` lands in site-packages (issue 17)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOP_LEVEL_FOLDERS = ("api", "audit", "retention", "rules", "services", "store")


def test_the_installed_code_imports_as_kodex_and_never_as_a_bare_top_level_name(tmp_path: Path) -> None:
    probe = "; ".join(
        ["import importlib.util", "import kodex.rules, kodex.api.cli, kodex.services.importing"]
        + [f"assert importlib.util.find_spec({name!r}) is None, {name!r}" for name in TOP_LEVEL_FOLDERS]
    )
    # outside the checkout and without PYTHONPATH: only what the installation provides
    done = subprocess.run(
        [sys.executable, "-I", "-c", probe], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr


def test_the_wheel_holds_one_package_kodex_with_the_bundled_policy(tmp_path: Path) -> None:
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = tmp_path.glob("kodex-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/", 1)[0] for name in names}
    assert top == {"kodex", next(n for n in top if n.endswith(".dist-info"))}
    for folder in TOP_LEVEL_FOLDERS:
        assert f"kodex/{folder}/__init__.py" in names
    assert "kodex/policies.yaml" in names
    assert "kodex/store/migrations/script.py.mako" in names


def test_no_module_was_imported_under_a_bare_top_level_name_during_the_suite() -> None:
    """Run last (tests/ sorts it after the packages' folders): whatever ran before imported kodex.… only."""
    assert sorted(name for name in TOP_LEVEL_FOLDERS if name in sys.modules) == []

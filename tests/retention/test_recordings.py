"""A recording's file lies in its library's recordings folder; the purge deletes nothing anywhere else.

Issue 16: "A `librarian` registers a camera recording whose `location` is `master.key` (or anything); the
next night's purge deletes it." An import whose location lies outside the folder once `..` and symbolic
links are resolved is refused; the purge never follows a symbolic link and never deletes outside the folder,
even for rows stored before the folder was enforced (those become failed purges that name the reason).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select, update

from kodex.config import load_settings
from kodex.errors import ConfigError, InvalidRecords
from kodex.retention.run import run_library
from kodex.rules.ruleset import Ruleset
from kodex.services.setup import Workspace
from kodex.store.schema import camera_recordings, decision_log
from tests.retention.support import AS_OF, WAIT, import_lines, recording, run, with_recordings

ENDED = "2026-11-10T11:00:00+01:00"  # its 7 days are over at the run of 22 November


@pytest.fixture
def cctv(workspace: Workspace, tmp_path: Path) -> Workspace:
    """The installation with its recordings folders under tmp_path/cctv, and a secret file outside them."""
    (tmp_path / "secret").mkdir()
    (tmp_path / "secret" / "master.key").write_bytes(b"the key")
    return with_recordings(workspace, tmp_path / "cctv")


def folder(work: Workspace, library: str = "svkpk") -> Path:
    return work.settings.recordings.folder(library)


def stored(work: Workspace) -> list[str]:
    with work.engine.connect() as connection:
        return list(connection.execute(select(camera_recordings.c.id)).scalars())


def outside_by_dots(work: Workspace, tmp_path: Path) -> str:
    return f"{folder(work)}/../../secret/master.key"


def outside_absolute(work: Workspace, tmp_path: Path) -> str:
    return str(tmp_path / "secret" / "master.key")


def outside_relative(work: Workspace, tmp_path: Path) -> str:
    return "master.key"


def outside_through_a_link(work: Workspace, tmp_path: Path) -> str:
    (folder(work) / "camera-1").symlink_to(tmp_path / "secret", target_is_directory=True)
    return str(folder(work) / "camera-1" / "master.key")


def outside_as_a_linked_file(work: Workspace, tmp_path: Path) -> str:
    (folder(work) / "cam.mp4").symlink_to(tmp_path / "secret" / "master.key")
    return str(folder(work) / "cam.mp4")


def in_another_librarys_folder(work: Workspace, tmp_path: Path) -> str:
    return str(folder(work, "kntb") / "cam.mp4")


def the_folder_itself(work: Workspace, tmp_path: Path) -> str:
    return str(folder(work))


@pytest.mark.parametrize(
    "location",
    [
        outside_by_dots, outside_absolute, outside_relative, outside_through_a_link, outside_as_a_linked_file,
        in_another_librarys_folder, the_folder_itself,
    ],
    ids=lambda f: f.__name__,
)  # fmt: skip
def test_an_import_naming_a_recording_file_outside_the_recordings_folder_is_refused_without_repeating_it(
    cctv: Workspace, ruleset: Ruleset, tmp_path: Path, location: Callable[[Workspace, Path], str]
) -> None:
    where = location(cctv, tmp_path)

    with pytest.raises(InvalidRecords) as refused:
        import_lines(cctv, ruleset, [recording("cam-1", ENDED, where)])

    assert [str(p) for p in refused.value.problems] == ["line 1: location: outside the recordings folder"]
    assert where not in str(refused.value) and "secret" not in str(refused.value)
    assert stored(cctv) == []
    assert (tmp_path / "secret" / "master.key").read_bytes() == b"the key"


@pytest.mark.parametrize("name", ["cam-1.mp4", "entrance/2026/11/cam-1.mp4"])
def test_a_recording_in_its_librarys_folder_is_imported_and_purged_after_its_seven_days(
    cctv: Workspace, ruleset: Ruleset, name: str
) -> None:
    video = folder(cctv) / name
    video.parent.mkdir(parents=True, exist_ok=True)
    video.write_bytes(b"video")
    import_lines(cctv, ruleset, [recording("cam-1", ENDED, video)])

    assert run(cctv, ruleset, "svkpk").counts == Counter({("purge", "applied"): 1})
    assert not video.exists() and stored(cctv) == []


def test_a_recording_whose_folder_is_named_through_its_link_is_inside_and_purged(
    workspace: Workspace, ruleset: Ruleset, tmp_path: Path
) -> None:
    (tmp_path / "nas").mkdir()
    (tmp_path / "cctv").symlink_to(tmp_path / "nas", target_is_directory=True)  # the operator's link: trusted
    work = with_recordings(workspace, tmp_path / "cctv")
    video = tmp_path / "nas" / "svkpk" / "cam-1.mp4"  # written by its real path
    video.write_bytes(b"video")
    import_lines(work, ruleset, [recording("cam-1", ENDED, video)])

    assert run(work, ruleset, "svkpk").counts == Counter({("purge", "applied"): 1})
    assert not video.exists()


def failed_purge(work: Workspace, ruleset: Ruleset) -> str:
    """Run SVK PK's night: the one recording's purge fails; the error its decision names."""
    assert run(work, ruleset, "svkpk").counts == Counter({("purge", "failed"): 1})
    assert stored(work) == ["cam-1"]
    with work.engine.connect() as connection:
        (entry,) = connection.execute(select(decision_log.c.entry).where(decision_log.c.kind == "decision")).scalars()
    error: str = json.loads(entry)["details"]["error"]
    return error


def test_a_row_stored_before_the_fix_with_a_location_outside_the_folder_is_a_failed_purge_naming_the_reason(
    cctv: Workspace, ruleset: Ruleset, tmp_path: Path
) -> None:
    import_lines(cctv, ruleset, [recording("cam-1", ENDED, folder(cctv) / "cam-1.mp4")])
    secret = tmp_path / "secret" / "master.key"
    with cctv.engine.begin() as connection:  # as an import before issue 16 stored it
        connection.execute(update(camera_recordings).values(location=str(secret)))

    error = failed_purge(cctv, ruleset)

    assert "outside the recordings folder" in error and str(tmp_path) not in error
    assert secret.read_bytes() == b"the key"


def test_the_purge_never_follows_a_folder_swapped_for_a_link_after_the_import(
    cctv: Workspace, ruleset: Ruleset, tmp_path: Path
) -> None:
    camera = folder(cctv) / "camera-1"
    camera.mkdir()
    (camera / "master.key").write_bytes(b"video")
    import_lines(cctv, ruleset, [recording("cam-1", ENDED, camera / "master.key")])
    (camera / "master.key").unlink()
    camera.rmdir()
    camera.symlink_to(tmp_path / "secret", target_is_directory=True)  # between the check and the purge

    error = failed_purge(cctv, ruleset)

    assert "symbolic link" in error and str(tmp_path) not in error
    assert (tmp_path / "secret" / "master.key").read_bytes() == b"the key"


def test_the_purge_never_deletes_through_a_file_swapped_for_a_link_after_the_import(
    cctv: Workspace, ruleset: Ruleset, tmp_path: Path
) -> None:
    video = folder(cctv) / "cam-1.mp4"
    video.write_bytes(b"video")
    import_lines(cctv, ruleset, [recording("cam-1", ENDED, video)])
    video.unlink()
    video.symlink_to(tmp_path / "secret" / "master.key")

    error = failed_purge(cctv, ruleset)

    assert "symbolic link" in error
    assert video.is_symlink() and (tmp_path / "secret" / "master.key").read_bytes() == b"the key"


def test_a_run_without_a_recordings_folder_purges_nothing(cctv: Workspace, ruleset: Ruleset) -> None:
    video = folder(cctv) / "cam-1.mp4"
    video.write_bytes(b"video")
    import_lines(cctv, ruleset, [recording("cam-1", ENDED, video)])

    result = run_library(cctv.engine, ruleset, cctv.master, "svkpk", AS_OF, wait=WAIT)  # no folder given

    assert result.counts == Counter({("purge", "failed"): 1})
    assert video.exists() and stored(cctv) == ["cam-1"]


# -- the configuration ------------------------------------------------------------------------------------------------


def test_each_library_has_its_own_folder_under_the_root_unless_the_config_names_one(tmp_path: Path) -> None:
    config = tmp_path / "kodex.toml"
    config.write_text('[recordings]\nroot = "/srv/cctv"\nlibraries = { svkpk = "/mnt/plzen" }\n', encoding="utf-8")

    settings = load_settings({"KODEX_HOME": str(tmp_path), "KODEX_CONFIG": str(config)})
    moved = load_settings({"KODEX_HOME": str(tmp_path), "KODEX_CONFIG": str(config), "KODEX_RECORDINGS_ROOT": "/x"})

    assert [settings.recordings.folder(lib) for lib in ("svkpk", "kntb")] == [
        Path("/mnt/plzen"),
        Path("/srv/cctv/kntb"),
    ]
    assert [moved.recordings.folder(lib) for lib in ("svkpk", "kntb")] == [Path("/mnt/plzen"), Path("/x/kntb")]
    assert load_settings({"KODEX_HOME": str(tmp_path / "bare")}).recordings.folder("svkpk") == Path("/var/cctv/svkpk")


def test_a_recordings_folder_that_is_not_an_absolute_path_is_a_configuration_error(tmp_path: Path) -> None:
    config = tmp_path / "kodex.toml"
    config.write_text('[recordings]\nlibraries = { svkpk = "cctv" }\n', encoding="utf-8")

    with pytest.raises(ConfigError, match=r"recordings\.libraries\.svkpk: Value error, write an absolute path"):
        load_settings({"KODEX_HOME": str(tmp_path), "KODEX_CONFIG": str(config)})
    with pytest.raises(ConfigError, match="KODEX_RECORDINGS_ROOT"):
        load_settings({"KODEX_HOME": str(tmp_path / "bare"), "KODEX_RECORDINGS_ROOT": "relative"})

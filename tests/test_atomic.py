import os
import stat

import pytest

from mlscam.atomic import atomic_path


def test_complete_file_appears_with_usual_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "sub" / "out.txt") as tmp:
            with open(tmp, "w") as f:
                f.write("done")
            assert not (tmp_path / "sub" / "out.txt").exists()  # nothing at the final name before the end
    finally:
        os.umask(old)
    out = tmp_path / "sub" / "out.txt"
    assert out.read_text() == "done"
    assert stat.S_IMODE(out.stat().st_mode) == 0o644


def test_failure_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "out.txt") as tmp:
            open(tmp, "w").write("half")
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []

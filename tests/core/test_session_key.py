"""The session tokens' key: the option, else a credential every worker shares, else a secret kept
in the store (the same for every process on it), else one of this process only."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from apimon.config import Config
from apimon.session_key import session_key
from apimon.store import Store
from tests.conftest import REPO


def test_the_option_then_the_vendors_credentials() -> None:
    assert session_key(Config.from_options(session_secret="mine", moesif_application_id="m")) == "mine"
    assert session_key(Config.from_options(moesif_application_id="m", store="off")) == "m"
    moengage = Config.from_options(moengage_workspace_id="w", moengage_api_key="k", store="off")
    assert session_key(moengage) == "k"


def _key_in_a_new_process(path: str) -> str:
    code = (
        "from apimon.config import Config; from apimon.session_key import session_key; "
        f"print(session_key(Config.from_options(store={path!r})))"
    )
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    ).stdout.strip()


def test_a_secret_kept_in_the_store_is_shared_by_every_process_on_it(tmp_path: Path) -> None:
    path = str(tmp_path / "a.db")
    first, second = _key_in_a_new_process(path), _key_in_a_new_process(path)
    assert first == second == session_key(Config.from_options(store=path))
    assert len(first) == 64
    other = str(tmp_path / "b.db")
    assert session_key(Config.from_options(store=other)) != first
    assert Store(path, readonly=True).recent(limit=1) == []  # still a store the CLI reads


def test_nowhere_to_keep_one_gives_a_key_of_this_process(tmp_path: Path) -> None:
    unwritable = tmp_path / "ro"
    unwritable.mkdir()
    unwritable.chmod(0o500)
    try:
        config = Config.from_options(store=str(unwritable / "x.db"))
        one, two = session_key(config), session_key(config)
        assert len(one) == len(two) == 64
    finally:
        unwritable.chmod(0o700)
    off = Config.from_options(store="off", moesif_application_id=None)
    assert session_key(off) != session_key(off)

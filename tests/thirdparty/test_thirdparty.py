"""Other projects' own test suites with apimon injected: Flask's tutorial app and
Flask's own tests (Werkzeug's test client), Starlette's own tests (its TestClient, under asyncio
and trio) and Django REST framework's (Django's test client). Each runs bare and with apimon; see
:mod:`tests.thirdparty.run` for what must hold. The first test makes the suites' environment
(``.venv-thirdparty``, a minute on a fresh machine) and downloads the pinned sdists.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.reliability.harness import record
from tests.thirdparty.run import PROJECTS, Project, check, ensure_venv


@pytest.fixture(scope="module")
def python() -> Path:
    return ensure_venv()


@pytest.mark.parametrize("project", PROJECTS, ids=[p.name for p in PROJECTS])
def test_the_suite_passes_the_same_and_every_request_is_an_event(
    project: Project, python: Path, tmp_path: Path
) -> None:
    verdict = check(project, python, tmp_path)
    assert not verdict.problems, "\n".join(verdict.problems)
    figures = verdict.figures
    assert figures["requests_reached_apimon"] == figures["events_stored"] + figures["counted_drops"]
    # RELIABILITY.md's rows (./dev reliability); the harness read where to put them at import,
    # before the autouse fixture cleared APIMON_* from the environment.
    record(f"third-party suite: {project.name} ({project.requirement}), bare and with apimon", **figures)

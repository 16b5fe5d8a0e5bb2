"""Other projects' own test suites, run once bare and once with apimon injected by a shim.

    python -m tests.thirdparty.run                 # every project (./dev thirdparty)
    python -m tests.thirdparty.run flaskr flask    # some of them
    python -m tests.thirdparty.run --python PATH   # in an environment that has requirements.txt

Each project's sdist is downloaded from PyPI at a pinned version (cached in ``.thirdparty/``) and
its tests are run in a virtual environment of their own (``.venv-thirdparty``, made from
``requirements.txt`` and this checkout). Nothing in their tests is edited: ``apimon_shim``, a pytest
plugin, turns apimon on the way a user would. A project passes when every test that passed bare
passes with apimon (but for the differences listed with their reasons below), every request that
reached apimon is a stored event or a counted drop, nothing is left unfinished and apimon counted
no internal error.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
CACHE = REPO / ".thirdparty"
VENV = Path(os.environ.get("APIMON_THIRDPARTY_VENV", REPO / ".venv-thirdparty"))

#: Why the Flask app's zero-refcount test differs: ``app.wsgi_app = Middleware(app.wsgi_app)``, the
#: idiom Flask documents for any WSGI middleware, makes a reference cycle (the app holds the
#: middleware, the middleware the app's bound method). Werkzeug's own ProxyFix fails the test the
#: same way; the app is still freed, by the garbage collector instead of at once.
WRAP_IDIOM_CYCLE = "the app.wsgi_app = Middleware(app.wsgi_app) idiom is a reference cycle (ProxyFix too)"


@dataclass(frozen=True)
class Project:
    name: str
    requirement: str  # the sdist, pinned
    tests: tuple[str, ...] = ("tests",)
    subdir: str = ""  # where its tests run from, inside the sdist
    pythonpath: tuple[str, ...] = ()
    #: Tests expected to differ with apimon, with the reason (each one checked to still differ).
    differences: dict[str, str] = field(default_factory=dict)


PROJECTS = [
    Project("flaskr", "flask==3.1.2", subdir="examples/tutorial", pythonpath=(".",)),
    Project(
        "flask",
        "flask==3.1.2",
        differences={"tests/test_basic.py::test_app_freed_on_zero_refcount": WRAP_IDIOM_CYCLE},
    ),
    Project("starlette", "starlette==0.48.0"),
    Project("djangorestframework", "djangorestframework==3.16.1"),
    # A WSGI framework of its own (no Werkzeug), whose test base runs every app under wsgiref's
    # validator: PEP 3333 checked between that server side and apimon.
    Project("bottle", "bottle==0.13.4", tests=("test",)),
]


def _run(command: list[str], **kwargs: Any) -> None:
    subprocess.run(command, check=True, **kwargs)


def ensure_venv() -> Path:
    """The suites' own environment, made once and again when requirements.txt changes."""
    python = VENV / "bin" / "python"
    wanted = hashlib.sha256((HERE / "requirements.txt").read_bytes()).hexdigest()
    stamp = VENV / ".apimon-thirdparty"
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    if not python.exists():
        _run([sys.executable, "-m", "venv", str(VENV)])
    quiet = ["-q", "--disable-pip-version-check"]
    _run([str(python), "-m", "pip", "install", *quiet, "-r", str(HERE / "requirements.txt")])
    _run([str(python), "-m", "pip", "install", *quiet, "-e", str(REPO)])
    stamp.write_text(wanted)
    return python


def source(project: Project, python: Path) -> Path:
    """The project's sdist, unpacked (downloaded once)."""
    name, _, version = project.requirement.partition("==")
    unpacked = CACHE / "src" / f"{name}-{version}"
    if not unpacked.exists():
        sdists = CACHE / "sdists"
        sdists.mkdir(parents=True, exist_ok=True)
        _run(
            [str(python), "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:"]
            + ["-d", str(sdists), project.requirement]
        )
        [archive] = [p for p in sdists.iterdir() if p.name.lower().startswith(f"{name.lower()}-{version}")]
        with tempfile.TemporaryDirectory(dir=CACHE) as tmp, tarfile.open(archive) as tar:
            tar.extractall(tmp, filter="data")
            [top] = list(Path(tmp).iterdir())
            unpacked.parent.mkdir(parents=True, exist_ok=True)
            top.rename(unpacked)
    return unpacked / project.subdir if project.subdir else unpacked


def run_suite(project: Project, python: Path, root: Path, mode: str, work: Path) -> dict[str, Any]:
    """One run of the project's tests; the shim's report."""
    report = work / f"{project.name}-{mode}.json"
    pythonpath = [str(HERE), *(str(root / p) for p in project.pythonpath)]
    # Nothing of the calling process's own setup leaks in (pytest-django exports its settings
    # module; apimon's options come from the shim only).
    inherited = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE" and not k.startswith("APIMON_")}
    env = {
        **inherited,
        "PYTHONPATH": os.pathsep.join(pythonpath),
        "APIMON_SHIM_MODE": mode,
        "APIMON_SHIM_STORE": str(work / f"{project.name}.db"),
        "APIMON_SHIM_LOG": str(work / f"{project.name}-apimon.log"),
        "APIMON_SHIM_REPORT": str(report),
        "PYTEST_ADDOPTS": "",
    }
    command = [str(python), "-m", "pytest", "-q", "--tb=short", "-p", "apimon_shim", "-p", "no:cacheprovider"]
    proc = subprocess.run([*command, *project.tests], cwd=root, env=env, capture_output=True, text=True, timeout=900)
    if not report.exists():
        raise RuntimeError(f"{project.name} ({mode}) left no report:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(report.read_text())
    result["output"] = proc.stdout[-6000:]
    return result


@dataclass
class Verdict:
    project: str
    figures: dict[str, Any]
    problems: list[str]


def compare(project: Project, bare: dict[str, Any], monitored: dict[str, Any], log: str) -> Verdict:
    """What the two runs show: the same tests pass, and apimon accounted for every request."""
    passed_bare = {t for t, o in bare["outcomes"].items() if o == "passed"}
    passed_with = {t for t, o in monitored["outcomes"].items() if o == "passed"}
    broken = passed_bare - passed_with
    problems = [f"passes bare, not with apimon: {t}" for t in sorted(broken - set(project.differences))]
    problems += [
        f"listed as differing, but does not: {t}" for t in sorted(set(project.differences) - broken) if t in passed_bare
    ]
    stats = monitored["stats"]
    reached = monitored["reached"]
    losses = sum(v for k, v in stats.items() if k.startswith("dropped_") or k in ("failed", "sampled_overload"))
    accounted = stats["captured"] + stats["skipped"] + stats["sampled_out"] + stats["unfinished"]
    if reached != accounted:
        problems.append(f"{reached} requests reached apimon, {accounted} accounted for")
    if stats["captured"] != stats["stored"] + losses:
        problems.append(f"captured {stats['captured']}, stored {stats['stored']} and counted {losses}")
    if monitored["stored_events"] != stats["stored"]:
        problems.append(f"stored {stats['stored']} counted, {monitored['stored_events']} events in the store")
    for counter in ("unfinished", "internal_errors"):
        if stats[counter]:
            problems.append(f"{counter} = {stats[counter]}")
    if reached == 0:
        problems.append("no request reached apimon: the shim did not take")
    figures = {
        "tests_passed_bare": len(passed_bare),
        "tests_passed_with_apimon": len(passed_with),
        "tests_differing_as_listed": len(broken & set(project.differences)),
        "requests_reached_apimon": reached,
        "events_stored": monitored["stored_events"],
        "counted_drops": losses,
        "unfinished": stats["unfinished"],
        "internal_errors": stats["internal_errors"],
    }
    if log.strip() and stats["internal_errors"]:
        problems.append("apimon logged:\n" + log[-3000:])
    return Verdict(project.name, figures, problems)


def check(project: Project, python: Path, work: Path) -> Verdict:
    root = source(project, python)
    bare = run_suite(project, python, root, "bare", work)
    monitored = run_suite(project, python, root, "apimon", work)
    log_path = work / f"{project.name}-apimon.log"
    verdict = compare(project, bare, monitored, log_path.read_text() if log_path.exists() else "")
    if verdict.problems:
        verdict.problems.append("with apimon, pytest printed:\n" + monitored["output"])
    return verdict


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("projects", nargs="*", help=f"some of: {', '.join(p.name for p in PROJECTS)}")
    parser.add_argument("--python", help="an interpreter that has requirements.txt and apimon installed")
    parser.add_argument("--figures", help="record each project's figures there (RELIABILITY.md's source)")
    args = parser.parse_args(argv)
    chosen = [p for p in PROJECTS if not args.projects or p.name in args.projects]
    python = Path(args.python) if args.python else ensure_venv()
    failed = 0
    print("| project | tests passed bare | with apimon | requests reached apimon | events | unfinished | errors |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="apimon-thirdparty-") as tmp:
        for project in chosen:
            verdict = check(project, python, Path(tmp))
            f = verdict.figures
            print(
                f"| {project.name} ({project.requirement}) | {f['tests_passed_bare']} | {f['tests_passed_with_apimon']}"
                f" | {f['requests_reached_apimon']} | {f['events_stored']} | {f['unfinished']}"
                f" | {f['internal_errors']} |",
                flush=True,
            )
            for problem in verdict.problems:
                print(f"  {project.name}: {problem}", file=sys.stderr)
            failed += bool(verdict.problems)
            if args.figures:
                _record(Path(args.figures), project, f)
    return 1 if failed else 0


def _record(path: Path, project: Project, figures: dict[str, Any]) -> None:
    rows = json.loads(path.read_text()) if path.exists() else {}
    rows[f"third-party suite: {project.name} ({project.requirement}), bare and with apimon"] = figures
    path.write_text(json.dumps(rows, indent=2, sort_keys=True))


if __name__ == "__main__":
    sys.exit(main())

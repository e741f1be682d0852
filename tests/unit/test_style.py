"""Repository-wide checks: lint, and every SLS/YAML file renders and parses."""

import pathlib
import subprocess
import sys

import jinja2
import pytest
import salt.utils.yaml

REPO = pathlib.Path(__file__).resolve().parents[2]


def test_ruff_is_clean():
    ruff = pathlib.Path(sys.executable).with_name("ruff")
    proc = subprocess.run(
        [str(ruff), "check", "--no-cache", str(REPO)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


YAML_FILES = sorted(
    p
    for pattern in ("**/*.yaml", "**/*.yml", "pillar.example", "salt/reactor/master.conf")
    for p in REPO.glob(pattern)
    if ".venv" not in p.parts
)


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_yaml_parses(path):
    assert salt.utils.yaml.safe_load(path.read_text()) is not None


SLS_FILES = sorted(p for p in REPO.glob("**/*.sls") if ".venv" not in p.parts)


@pytest.mark.parametrize("path", SLS_FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_sls_compiles(path):
    """Every SLS is valid Jinja, or Python for a ``#!py`` one (rendering with
    real data is done by the integration tests)."""
    text = path.read_text()
    if text.startswith("#!py"):
        compile(text, str(path), "exec")
        return
    env = jinja2.Environment(extensions=["jinja2.ext.do"])
    env.filters["json"] = env.filters["regex_match"] = lambda *a, **k: a[0]
    env.parse(text)

"""Test support shared by every layer: paths, seed data, helpers."""

import pathlib

REPO = pathlib.Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data"
SPECIMENS = DATA / "specimens"

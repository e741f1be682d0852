"""Unit tests of single execution modules, loader mocked."""

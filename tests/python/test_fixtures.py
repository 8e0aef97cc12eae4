"""The committed C++ parity fixtures are what the reference computes today.

Regenerates every fixture into a temporary directory and compares: integers (codes, inputs,
state counts) exactly, floats to 1e-6 of their scale. A reference change that moves any output
fails here until the fixtures are regenerated (python3 -m longvq_ref.fixtures) and committed.
"""
from pathlib import Path

import numpy as np
import pytest

from longvq_ref import fixtures, safetensors_io

ROOT = Path(__file__).resolve().parents[1] / "fixtures"


@pytest.mark.parametrize("name", list(fixtures.FIXTURES))
def test_fixture_has_not_drifted(name, tmp_path):
    committed = ROOT / name
    assert committed.is_dir(), f"{committed} is missing: run python3 -m longvq_ref.fixtures"
    fixtures.build_fixture(name, tmp_path)
    assert (tmp_path / "config.json").read_text() == (committed / "config.json").read_text()
    for file in ("model.safetensors", "expected.safetensors"):
        fresh, fresh_meta = safetensors_io.read(tmp_path / file)
        old, old_meta = safetensors_io.read(committed / file)
        assert fresh_meta == old_meta, file
        assert sorted(fresh) == sorted(old), f"{file}: tensor names differ"
        for key in fresh:
            a, b = fresh[key], old[key]
            assert a.dtype == b.dtype and a.shape == b.shape, f"{file}:{key}"
            if np.issubdtype(a.dtype, np.integer):
                assert np.array_equal(a, b), f"{file}:{key} differs"
            else:
                scale = max(1.0, float(np.abs(b).max())) if b.size else 1.0
                err = float(np.abs(a - b).max()) if b.size else 0.0
                assert err <= 1e-6 * scale, f"{file}:{key} drifted by {err:.2e}"

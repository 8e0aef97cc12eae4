"""The shipped models' numbers are what the reference measures on a clean checkout.

Recomputes every model's metric and predictions on the committed test slices and compares with
tests/data/reference_predictions.json (what the engine is tested against) and with the model
cards. Skips a model that is not in models/ (with a visible reason).
"""
import json

import pytest

from longvq_ref import slices

EXPECTED = json.loads(slices.OUT.read_text()) if slices.OUT.exists() else {}


@pytest.fixture(scope="module")
def recomputed():
    return slices.compute()


@pytest.mark.parametrize("name", ["austen-lm", "listops", "fashion-seq"])
def test_slice_metrics_and_cards(name, recomputed):
    if not (slices.REPO / "models" / name / "config.json").exists():
        pytest.skip(f"models/{name} is not shipped yet")
    assert name in EXPECTED, f"{slices.OUT} lacks {name}: run python3 -m longvq_ref.slices"
    got, want = recomputed[name], EXPECTED[name]
    if "predictions" in want:
        assert got["predictions"] == want["predictions"]
        assert got["accuracy"] == want["accuracy"]
    else:
        assert abs(got["bits_per_byte"] - want["bits_per_byte"]) < 1e-9
    card = (slices.REPO / "models" / name / "README.md").read_text()
    assert slices.card_section(got) in card, f"models/{name}/README.md does not state the recomputed slice metric"


@pytest.mark.parametrize("name", ["austen-lm", "listops", "fashion-seq"])
def test_recipe_describes_the_shipped_model(name):
    """The card's Reproduce command trains the architecture that is shipped."""
    from longvq_ref import recipes
    from longvq_ref.config import Config
    path = slices.REPO / "models" / name / "config.json"
    if not path.exists():
        pytest.skip(f"models/{name} is not shipped yet")
    shipped = Config.from_dict(json.loads(path.read_text())).to_dict()
    assert shipped == recipes.RECIPES[name]().config.to_dict(), f"recipe {name} no longer trains models/{name}"

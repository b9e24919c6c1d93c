"""Setup's field checks (plain functions, no app): what a search would refuse is refused as typed."""

from depthprune.tui.setup_form import DEFAULTS, validate


def checked(**changes):
    return validate({**DEFAULTS, **changes}, blocks=8)


def test_a_mix_objective_is_accepted_and_its_calibration_checked_per_term():
    assert "objective" not in checked(objective="mix:ppl=0.5,margin=0.5")
    assert "unknown term 'bleu'" in checked(objective="mix:ppl=1,bleu=1")["objective"]
    assert "calib" not in checked(objective="mix:ppl=1,margin=1", calib="ppl=demo,margin=demo")
    assert "is not a term of" in checked(objective="mix:ppl=1,margin=1", calib="kl=demo")["calib"]
    assert (
        "unknown question source 'c4' for margin" in checked(objective="mix:ppl=1,margin=1", calib="margin=c4")["calib"]
    )
    assert "unknown text source 'commonsense-x'" in checked(objective="ppl", calib="commonsense-x")["calib"]


def test_nsga2_needs_a_mix_of_two_terms_as_typed():
    assert checked(searcher="nsga2", objective="ppl")["searcher"] == (
        "searcher nsga2 needs a mix objective of at least two terms (--objective mix:ppl=1,margin=1); got 'ppl'"
    )
    assert "searcher" in checked(searcher="nsga2", objective="mix:ppl=1")
    assert "searcher" not in checked(searcher="nsga2", objective="mix:ppl=1,margin=1")

"""The New study form's rules (plain Python): the study table built from the Setup fields, the TOML it
is written as, and the one-line errors naming the form field, the Setup field or the file."""

from depthprune.study.config import load_study
from depthprune.tui.setup_form import DEFAULTS
from depthprune.tui.study_form import check, prepare, to_toml

FROM_SETUP = {"file": "", "name": "grid", "objectives": "ppl,margin", "searchers": "beam,anneal", "baselines": "tail"}


def setup(**values):
    return {**DEFAULTS, "model": "tiny:llama:12", **values}


def test_setup_fields_become_a_study_file_that_reads_back(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    fields = setup(
        k="4",
        seed="3",
        protect="0,-1",
        budget="50",
        options="width=3",
        searcher="beam",
        calib="demo",
        calib_samples="8",
        calib_seq_len="32",
        device="cpu",
        eval_tasks="demo-text, demo-mc",
        eval_limit="5",
        eval_seq_len="64",
        data_dir=str(data),
    )
    assert check(FROM_SETUP, fields, tmp_path / "runs") == {}
    config, path = prepare(FROM_SETUP, fields, tmp_path / "runs")
    assert path == tmp_path / "runs" / "studies" / "grid" / "study.toml"
    assert path.read_text().startswith('name = "grid"\nmodels = ["tiny:llama:12"]\n')  # what the child reads
    assert (config.models, config.objectives, config.searchers, config.baselines) == (
        ["tiny:llama:12"],
        ["ppl", "margin"],
        ["beam", "anneal"],
        ["tail"],
    )
    assert (config.k, config.seeds, config.protect, config.device, config.data_dir) == (
        [4],
        [3],
        [0, -1],
        "cpu",
        str(data.resolve()),
    )
    assert config.calibration == {o: {"source": "demo", "samples": 8, "seq_len": 32} for o in ("ppl", "margin")}
    # the options go to Setup's searcher, the budget to the searchers that take one
    assert config.options == {"beam": {"width": 3}, "anneal": {"budget": 50}}
    assert (config.evaluation["tasks"], config.evaluation["limit"], config.evaluation["seq_len"]) == (
        ["demo-text", "demo-mc"],
        5,
        64,
    )


def test_toml_strings_keep_quotes_and_backslashes(tmp_path):
    table = {"name": "x", "models": ['a "b" \\c'], "k": [2], "options": {"ga": {"population": 8}}}
    path = tmp_path / "s.toml"
    path.write_text(to_toml(table))
    config = load_study(path)
    assert config.models == ['a "b" \\c'] and config.options == {"ga": {"population": 8}}


def test_errors_name_the_form_field_the_setup_field_or_the_file(tmp_path):
    runs_dir = tmp_path / "runs"
    bad = {**FROM_SETUP, "name": "a b", "searchers": "beam,nope", "baselines": "tail,tail"}
    errors = check(bad, setup(), runs_dir)
    assert errors["name"].startswith("'a b': letters, digits")
    assert errors["searchers"].startswith("unknown 'nope'; valid: oneshot greedy beam")
    assert errors["baselines"] == "a name is listed twice"
    assert check(FROM_SETUP, setup(k="x"), runs_dir) == {
        "Setup fields": "Setup's Blocks to remove 'x' is not an integer"
    }
    assert check(FROM_SETUP, setup(eval_limit="0"), runs_dir) == {
        "Setup fields": "[evaluation]: limit = 0 should be at least 1"
    }
    prepare(FROM_SETUP, setup(), runs_dir)
    (runs_dir / "studies" / "grid" / "study.json").write_text("{}")  # the study has started once
    assert check(FROM_SETUP, setup(), runs_dir)["name"].startswith("study 'grid' exists; to continue it give its file")
    missing = tmp_path / "nope.toml"
    assert check({**FROM_SETUP, "file": str(missing)}, setup(), runs_dir) == {
        "file": f"study file {str(missing)!r} not found"
    }


def test_a_mix_objective_keeps_its_comma_separated_terms_in_the_form_list(tmp_path):
    runs_dir = tmp_path / "runs"
    mixed = {**FROM_SETUP, "objectives": "ppl, mix:ppl=0.5,margin=0.5"}
    assert check(mixed, setup(), runs_dir) == {}
    config, _ = prepare(mixed, setup(), runs_dir)
    assert config.objectives == ["ppl", "mix:ppl=0.5,margin=0.5"]
    bad = check({**mixed, "objectives": "ppl,mix:ppl=0.5,nope=1"}, setup(), runs_dir)
    assert list(bad) == ["Setup fields"] and "unknown term 'nope'" in bad["Setup fields"]

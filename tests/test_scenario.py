"""Scenario files: round trip, canonical hash, `base =` inheritance and `--set` overrides."""

from __future__ import annotations

import datetime as dt
import tomllib
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from click.testing import CliRunner

from simulator.cli import main
from simulator.distributions import Fixed, Lognormal, Uniform
from simulator.errors import InputError
from simulator.scenario import Scenario, date_to_months, load_scenario, month_end

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
BASE = DATA / "base.toml"
SHIPPED = sorted(p for p in (ROOT / "scenarios").glob("*.toml")
                 if "sweep" not in tomllib.loads(p.read_text(encoding="utf-8")))


def messages(exc: pytest.ExceptionInfo[InputError]) -> list[str]:
    return [str(p) for p in exc.value.problems]


def reversed_keys(value: Any) -> Any:
    """The same tables with every key order reversed."""
    if isinstance(value, dict):
        return {k: reversed_keys(value[k]) for k in reversed(list(value))}
    if isinstance(value, list):
        return [reversed_keys(v) for v in value]
    return value


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def with_base(folder: Path, body: str, name: str = "child.toml", base: Path = BASE) -> Path:
    return write(folder / name, f'base = "{base.as_posix()}"\n{body}')


# -- shipped scenarios ----------------------------------------------------------------

def test_there_are_shipped_scenarios():
    assert {p.name for p in SHIPPED} >= {"wecare_fesr_2018.toml", "loan_only.toml",
                                         "grant_heavy.toml"}


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_scenario_round_trips(path, tmp_path):
    scenario = load_scenario(path)
    text = scenario.resolved_toml()
    again = load_scenario(write(tmp_path / "resolved.toml", text))
    assert again == scenario
    assert again.model_dump() == scenario.model_dump()
    assert again.hash() == scenario.hash()
    assert again.resolved_toml() == text  # a fixed point: resolving twice changes nothing
    assert "base" not in tomllib.loads(text)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_scenario_validates(path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("OK ")
    assert result.stderr == ""
    assert list(tmp_path.iterdir()) == []


def test_resolved_toml_is_plain_file_values():
    tables = tomllib.loads(load_scenario(ROOT / "scenarios" / "wecare_fesr_2018.toml")
                           .resolved_toml())
    assert tables["fund"]["endowment"] == 5_000_000
    assert tables["lines"]["A"]["applications"]["cost"] == {
        "dist": "lognormal", "median": 1_400_000, "sigma": 0.35}
    assert tables["lines"]["B"]["applications"]["evaluation_months"] == 1.5
    assert tables["scenario"]["start"] == dt.date(2018, 10, 15)


# -- canonical hash ---------------------------------------------------------------------

def test_hash_ignores_key_order_inheritance_and_number_spelling(tmp_path):
    flat_tables = tomllib.loads(BASE.read_text(encoding="utf-8"))
    flat_tables["lines"]["A"]["instrument"]["grant_share"] = 0.1
    flat_tables["lines"]["A"]["instrument"]["coverage"] = 0.9
    flat = load_scenario(write(tmp_path / "flat.toml", tomli_w.dumps(flat_tables)))
    backwards = load_scenario(write(tmp_path / "backwards.toml",
                                    tomli_w.dumps(reversed_keys(flat_tables))))
    inherited = load_scenario(with_base(
        tmp_path, "[lines.A.instrument]\ncoverage = 0.90\ngrant_share = 1e-1\n"))
    overridden = load_scenario(BASE, ["lines.A.instrument.grant_share=0.1",
                                      "lines.A.instrument.coverage=0.9"])
    assert flat.hash() == backwards.hash() == inherited.hash() == overridden.hash()
    assert flat == backwards == inherited == overridden


def test_hash_counts_defaults_written_or_not(tmp_path):
    explicit = load_scenario(with_base(tmp_path, "[lines.B.instrument]\nmethod = \"french\"\n"
                                       "grant_share = 0\nfrequency = \"quarterly\"\n"))
    assert explicit.hash() == load_scenario(BASE).hash()


@pytest.mark.parametrize("override", [
    "lines.A.instrument.public_rate=0.005",
    "scenario.seed=43",
    "scenario.title=\"Another title\"",
    "lines.B.applications.cost.sigma=0.6",
    "lines.A.disbursement.tranches=[{share=1.0, at=\"signing\"}]",
])
def test_a_changed_value_changes_the_hash(override):
    assert load_scenario(BASE, [override]).hash() != load_scenario(BASE).hash()


def test_hash_does_not_depend_on_where_the_file_is(tmp_path, monkeypatch):
    copy = write(tmp_path / "copy.toml", BASE.read_text(encoding="utf-8"))
    assert load_scenario(copy).hash() == load_scenario(BASE).hash()
    monkeypatch.chdir(DATA)
    assert load_scenario("base.toml") == load_scenario(copy)


# -- inheritance --------------------------------------------------------------------------

def test_base_chain_of_three_files_merges_tables_and_replaces_lists(tmp_path):
    grand = with_base(tmp_path, '[scenario]\nname = "grand"\ntitle = "Grand"\n'
                      '[lines.A.instrument]\ngrant_share = 0.1\ncoverage = 0.9\n',
                      name="grand.toml")
    parent = with_base(tmp_path, '[scenario]\nname = "parent"\n'
                       '[lines.A.instrument]\ngrant_share = 0.05\n'
                       '[lines.A.disbursement]\ntranches = [{share = 0.3, at = "signing"}, '
                       '{share = 0.7, at = "completion"}]\n', name="parent.toml", base=grand)
    child = with_base(tmp_path, '[lines.A.disbursement]\n'
                      'tranches = [{share = 1.0, at = "signing"}]\n'
                      '[lines.A.risk]\ndefault_rate = 0.02\n', name="child.toml", base=parent)
    scenario = load_scenario(child)
    assert scenario.name == "parent"                                   # parent over grand
    assert scenario.scenario.title == "Grand"                          # kept from grand
    assert scenario.lines["A"].instrument.grant_share == 0.05           # parent over grand
    assert scenario.lines["A"].instrument.coverage == 0.9               # from grand
    assert scenario.lines["A"].instrument.public_loan_share == 0.7      # from the root base
    assert [t.share for t in scenario.lines["A"].disbursement.tranches] == [1.0]  # replaced
    assert scenario.lines["A"].risk.default_rate == 0.02                # child
    assert scenario.lines["B"].risk.default_rate == 0.05                # root base
    assert load_scenario(parent).lines["A"].disbursement.tranches[1].share == 0.7


def test_a_distribution_table_replaces_the_inherited_one(tmp_path):
    scenario = load_scenario(with_base(
        tmp_path, '[lines.A.applications]\ncost = {dist = "uniform", low = 1e6, high = 2e6}\n'))
    assert scenario.lines["A"].applications.cost == Uniform(dist="uniform", low=1e6, high=2e6)


def test_a_table_without_dist_changes_single_parameters(tmp_path):
    scenario = load_scenario(with_base(tmp_path, "[lines.A.applications.cost]\nsigma = 0.5\n"))
    assert scenario.lines["A"].applications.cost == Lognormal(
        dist="lognormal", median=1_400_000, sigma=0.5)


def test_a_number_replaces_an_inherited_distribution(tmp_path):
    scenario = load_scenario(with_base(tmp_path, "[lines.A.applications]\n"
                                       "evaluation_months = 3\n"))
    assert scenario.lines["A"].applications.evaluation_months == Fixed(value=3.0)


def test_an_error_names_the_file_that_set_the_value(tmp_path):
    parent = with_base(tmp_path, "[lines.A.risk]\nrecovery_rate = 1.5\n", name="parent.toml")
    child = with_base(tmp_path, "[lines.A.risk]\ndefault_rate = 0.02\n", base=parent)
    with pytest.raises(InputError) as exc:
        load_scenario(child)
    assert messages(exc) == [f"{parent}: lines.A.risk.recovery_rate: must be between 0 and 1, "
                             "got 1.5"]


def test_inheritance_cycle_is_refused(tmp_path):
    write(tmp_path / "a.toml", 'base = "b.toml"\n')
    write(tmp_path / "b.toml", 'base = "c.toml"\n')
    write(tmp_path / "c.toml", 'base = "a.toml"\n')
    with pytest.raises(InputError) as exc:
        load_scenario(tmp_path / "a.toml")
    (message,) = messages(exc)
    assert message.startswith(f"{tmp_path / 'c.toml'}: base: inheritance cycle: ")
    assert message.endswith("a.toml -> " + str(tmp_path / "b.toml") + " -> "
                            + str(tmp_path / "c.toml") + " -> " + str(tmp_path / "a.toml"))


def test_base_must_be_a_file_name(tmp_path):
    with pytest.raises(InputError) as exc:
        load_scenario(write(tmp_path / "x.toml", "base = 3\n"))
    assert messages(exc) == [f"{tmp_path / 'x.toml'}: base: must be a file name in quotes, got 3"]


def test_a_sweep_file_is_not_a_scenario(tmp_path):
    path = with_base(tmp_path, '[sweep]\n"lines.A.instrument.grant_share" = [0.0, 0.1]\n')
    with pytest.raises(InputError) as exc:
        load_scenario(path)
    assert "this is a sweep file" in messages(exc)[0]


# -- --set overrides ---------------------------------------------------------------------

@pytest.mark.parametrize(("override", "read", "expected"), [
    ("lines.A.instrument.public_loan_share=0.75",
     lambda s: s.lines["A"].instrument.public_loan_share, 0.75),
    ("fund.treasury_rate=0", lambda s: s.fund.treasury_rate, 0.0),
    ("scenario.horizon_months=120", lambda s: s.scenario.horizon_months, 120),
    ("scenario.horizon_months=120.0", lambda s: s.scenario.horizon_months, 120),
    ("scenario.replications = 50", lambda s: s.scenario.replications, 50),
    ("fund.fees.paid_from_fund=false", lambda s: s.fund.fees.paid_from_fund, False),
    ("fund.eligibility_end=2024-06-30", lambda s: s.fund.eligibility_end, dt.date(2024, 6, 30)),
    ('fund.eligibility_end="2024-06-30"', lambda s: s.fund.eligibility_end,
     dt.date(2024, 6, 30)),
    ("lines.A.procedure=graduatoria", lambda s: s.lines["A"].procedure, "graduatoria"),
    ('lines.A.procedure="graduatoria"', lambda s: s.lines["A"].procedure, "graduatoria"),
    ("scenario.name=2019", lambda s: s.name, "2019"),
    ("scenario.title=Fondo WECARE bis", lambda s: s.scenario.title, "Fondo WECARE bis"),
    ('lines.A.applications.evaluation_months={dist="uniform", low=1, high=2}',
     lambda s: s.lines["A"].applications.evaluation_months,
     Uniform(dist="uniform", low=1.0, high=2.0)),
    ("lines.A.applications.evaluation_months=3",
     lambda s: s.lines["A"].applications.evaluation_months, Fixed(value=3.0)),
    ("lines.A.applications.cost.sigma=0.5", lambda s: s.lines["A"].applications.cost.sigma, 0.5),
    ("lines.A.instrument.max_grant=150000", lambda s: s.lines["A"].instrument.max_grant,
     150_000.0),
    ("fund.fees.cap=0.07", lambda s: s.fund.fees.cap, 0.07),
    ('lines.A.disbursement.tranches.0.at="completion"',
     lambda s: s.lines["A"].disbursement.tranches[0].at, "completion"),
])
def test_set_coerces_to_the_field_type(override, read, expected):
    scenario = load_scenario(BASE, [override])
    value = read(scenario)
    assert value == expected
    assert type(value) is type(expected)


def test_set_graduatoria_with_call_windows():
    scenario = load_scenario(BASE, [
        "lines.B.procedure=graduatoria",
        "lines.B.calls=[{opens=2019-01-01, closes=2019-03-31}]"])
    assert scenario.lines["B"].calls[0].closes == dt.date(2019, 3, 31)


def test_set_is_applied_after_inheritance_and_named_in_errors():
    with pytest.raises(InputError) as exc:
        load_scenario(BASE, ["lines.A.instrument.public_loan_share=1.4"])
    assert messages(exc) == ["--set: lines.A.instrument.public_loan_share: must be between "
                             "0 and 1, got 1.4"]


@pytest.mark.parametrize(("override", "message"), [
    ("lines.A.instrument.grace=12",
     "--set: lines.A.instrument.grace: unknown field (did you mean 'grace_months'?)"),
    ("fund.colour=1", "--set: fund.colour: unknown field; allowed: endowment,"),
    ("lines.C.allocation=5", "--set: lines.C.allocation: no line 'C' (lines: A, B)"),
    ("lines.a.allocation=5", "--set: lines.a.allocation: no line 'a' (lines: A, B) "
     "(did you mean 'A'?)"),
    ("fund.endowment.cents=5", "--set: fund.endowment.cents: fund.endowment is a value, "
     "not a table"),
    ("lines.A.disbursement.tranches.2.share=1",
     "--set: lines.A.disbursement.tranches.2.share: lines.A.disbursement.tranches has 2 "
     "item(s)"),
    ("grant_share", "--set: grant_share: expected dotted.path=value"),
    ("lines.A.instrument.grant_share=0,1",
     "--set: lines.A.instrument.grant_share: expected a number, got '0,1'"),
])
def test_set_to_an_unknown_path_or_bad_value_is_an_error_naming_set(override, message):
    with pytest.raises(InputError) as exc:
        load_scenario(BASE, [override])
    (found,) = messages(exc)
    assert found.startswith(message), found


def test_every_bad_override_is_reported_at_once():
    with pytest.raises(InputError) as exc:
        load_scenario(BASE, ["lines.C.allocation=1", "fund.colour=1", "nonsense"])
    assert len(exc.value.problems) == 3


def test_set_on_the_command_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    ok = runner.invoke(main, ["validate", str(BASE), "--set", "lines.A.instrument.coverage=0.9",
                              "--set", "lines.A.instrument.grant_share=0.1"])
    assert ok.exit_code == 0, ok.stderr
    bad = runner.invoke(main, ["validate", str(BASE), "--set", "lines.A.instrument.grant_shar=0.1"])
    assert bad.exit_code == 2
    assert "--set: lines.A.instrument.grant_shar: unknown field (did you mean 'grant_share'?)" in \
        bad.stderr
    assert "Traceback" not in bad.stderr
    assert list(tmp_path.iterdir()) == []


# -- cross-field attribution -----------------------------------------------------------------

def test_cross_field_error_is_shown_on_the_value_changed_last(tmp_path):
    """min_cost raised in a child: the message is about min_cost, in the child."""
    child = with_base(tmp_path, "[lines.B]\nmin_cost = 150_000\n")
    with pytest.raises(InputError) as exc:
        load_scenario(child)
    assert messages(exc) == [f"{child}: lines.B.min_cost: must not exceed max_cost "
                             "(100.000 €), got 150.000 €"]
    with pytest.raises(InputError) as exc:
        load_scenario(BASE, ["lines.B.max_cost=5000"])
    assert messages(exc) == ["--set: lines.B.max_cost: must not be below min_cost (10.000 €), "
                             "got 5.000 €"]


def test_a_moved_start_gives_one_message_for_all_the_dates_it_breaks():
    with pytest.raises(InputError) as exc:
        load_scenario(BASE, ["scenario.start=2019-01-01"])
    assert messages(exc) == ["--set: scenario.start: must not be after lines.A.desk_opens "
                             "(2018-10-15), got 2019-01-01"]


def test_a_wrong_value_is_not_reported_again_by_the_rules_that_use_it():
    for override in ("lines.A.instrument.grant_share=1.5", "lines.A.allocation=-1",
                     "lines.A.instrument.term_months=-4", "lines.B.min_cost=0"):
        with pytest.raises(InputError) as exc:
            load_scenario(BASE, [override])
        assert len(exc.value.problems) == 1, messages(exc)


def test_a_misspelt_required_key_is_one_mistake(tmp_path):
    text = BASE.read_text(encoding="utf-8").replace("public_loan_share = 0.8",
                                                    "public_loan_shar = 0.8")
    with pytest.raises(InputError) as exc:
        load_scenario(write(tmp_path / "typo.toml", text))
    assert messages(exc) == [f"{tmp_path / 'typo.toml'}: lines.B.instrument.public_loan_shar: "
                             "unknown key (did you mean 'public_loan_share'?)"]


def test_scenario_equality_is_by_content():
    a, b = load_scenario(BASE), load_scenario(BASE)
    assert a == b and a is not b
    assert a != load_scenario(BASE, ["scenario.seed=1"])
    assert a != "not a scenario"
    assert isinstance(a, Scenario)


# -- calendar ------------------------------------------------------------------------------

def test_date_to_months_and_month_end():
    start = dt.date(2018, 10, 15)
    assert date_to_months(start, start) == 0
    assert date_to_months(start, dt.date(2018, 11, 15)) == pytest.approx(1.0, abs=0.02)
    assert date_to_months(start, dt.date(2019, 10, 15)) == pytest.approx(12.0, abs=0.01)
    assert month_end(start, 0) == dt.date(2018, 10, 31)
    assert month_end(start, 4) == dt.date(2019, 2, 28)
    assert month_end(start, 207) == dt.date(2036, 1, 31)

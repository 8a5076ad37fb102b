"""TOML run cards: defaults, round trips, one-line errors with file, line and key, and
the run cards shipped with the built-in processes."""

from __future__ import annotations

import dataclasses
import os
import tomllib
from pathlib import Path

import pytest

from madnis_py.cards import (
    DistributedSettings,
    RunCard,
    RunCardError,
    RunCardNotFoundError,
    load_run_card,
    parse_run_card,
)
from madnis_py.cards._toml import KeyLocator, toml_value
from madnis_py.physics import builtin_processes, load_process

PROCESSES = Path(__file__).resolve().parents[2] / "processes"

FULL = """\
# a card with every table
[run]
process = "drell_yan"
seed = 7
nevents = 500
output = "out/dy"
device = "cpu"

[collider]
ebeam1 = 6500.0
ebeam2 = 6500
lhaid = 303000

[scale]
dynamical_scale_choice = 3
alpha_s = 0.118

[cuts]
ptl = 20
etal = 2.5
mmll = 60.0

[training]
steps = 10
batch = 512
lr = 1e-3
loss = "stratified"
buffered_steps = 2
buffer_batches = 3
trainable_weights = false
vegas = false
vegas_iterations = 3
vegas_points = 1000
warmup = 5
min_fraction = 0.2
drop_threshold = 0.0
drop_patience = 4
bins = 8
blocks = 2
layers = 2
units = 16

[integration]
points = 2000
iterations = 2

[unweighting]
max_weight = "replicas"
quantile = 1.0
replicas = 5
overweight = "truncate"
allocation = "sigma"
settle_events = 0

[output]
lhe = "dy.lhe"
plots = false
checkpoint = "dy.pt"

[distributed]
cluster = "slurm"
workers = 3
shards = 6
options = { queue = "short", cores = 4, "job extra" = ["--exclusive"], env = { A = "1" } }
"""


def write(tmp_path: Path, text: str, name: str = "run.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def line_of(text: str, needle: str) -> int:
    """1-based line of the first line containing ``needle``."""
    for number, line in enumerate(text.splitlines(), start=1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in the text")


# ---------------------------------------------------------------- reading


def test_minimal_card_has_the_documented_defaults(tmp_path: Path) -> None:
    card = load_run_card(write(tmp_path, '[run]\nprocess = "ee_mumu"\n'))
    assert card.run.process == "ee_mumu"
    assert (card.run.seed, card.run.nevents, card.run.device) == (1, 10_000, "cpu")
    assert card.run.output == Path.cwd() / "ee_mumu_run"  # not beside the card
    assert card.collider.sqrt_s is None and card.collider.pdf is None
    assert card.collider.lhaid is None
    assert card.scale.fixed is None and card.scale.dynamical_scale_choice is None
    assert card.cuts is None and card.distributed is None
    t = card.training
    assert (t.steps, t.batch, t.lr, t.loss) == (200, 4096, 3e-3, "variance")
    assert (t.buffered_steps, t.buffer_batches, t.trainable_weights) == (0, 4, True)
    assert (t.vegas, t.vegas_iterations, t.vegas_points, t.vegas_growth) == (True, 15, 2_000,
                                                                          1.3)
    assert (t.warmup, t.min_fraction) == (20, 0.1)
    assert (t.bins, t.blocks, t.layers, t.units) == (None, None, None, None)
    assert (card.integration.points, card.integration.iterations) == (100_000, 5)
    assert card.integration.points_per_channel == 1000
    u = card.unweighting
    assert (u.max_weight, u.quantile, u.replicas, u.overweight) == ("truncation", 0.999, 10,
                                                                    "truncate")
    assert (u.max_overweight_truncation, u.allocation) == (1e-3, "auto")
    assert u.settle_events == 200_000
    assert (card.output.lhe, card.output.plots) == ("events.lhe.gz", True)
    assert card.output.checkpoint == "checkpoint.pt"
    assert card.source == (tmp_path / "run.toml").resolve()
    assert card.lhe_path == Path.cwd() / "ee_mumu_run" / "events.lhe.gz"
    # a directory means its run_card.toml
    write(tmp_path, '[run]\nprocess = "ee_mumu"\n', "run_card.toml")
    assert load_run_card(tmp_path) == card


def test_full_card_values_and_keyword_arguments(tmp_path: Path) -> None:
    card = load_run_card(write(tmp_path, FULL))
    assert card.run.output == (tmp_path / "out" / "dy").resolve()
    assert card.collider.sqrt_s == 13000.0 and card.collider.lhaid == 303000
    assert card.cuts == {"ptl": 20.0, "etal": 2.5, "mmll": 60.0}
    assert isinstance(card.cuts["ptl"], float)
    assert card.distributed == DistributedSettings(
        scheduler=None, cluster="slurm", workers=3, shards=6,
        options={"queue": "short", "cores": 4, "job extra": ["--exclusive"],
                 "env": {"A": "1"}})
    assert card.integrand_options() == {
        "sqrt_s": 13000.0, "pdf": 303000, "dynamical_scale_choice": 3,
        "cuts": {"ptl": 20.0, "etal": 2.5, "mmll": 60.0}, "alpha_s": 0.118}
    assert card.integrator_options() == {
        "flow_options": {"bins": 8, "blocks": 2, "layers": 2, "units": 16},
        "trainable_weights": False, "loss": "stratified", "lr": 1e-3, "min_fraction": 0.2,
        "warmup": 5, "drop_threshold": 0.0, "drop_patience": 4, "mixture": 0.0, "uniform_mixture": 0.0,
        "max_weight_penalty": 0.0, "top_fraction": 0.01, "max_grad_norm": 3e-3,
        "freeze_weights_after": 1.0, "seed": 7}
    assert card.train_options() == {"steps": 10, "batch": 512, "buffered_steps": 2,
                                    "buffer_batches": 3}
    # target "events" (the default): the survey stops once it no longer shortens the
    # time to [run] nevents
    assert card.vegas_options() == {"nitn": 3, "neval": 1000, "growth": 1.3, "floor": 0.3,
                                    "n_events": card.run.nevents,
                                    "truncation": 1e-3}
    steps = dataclasses.replace(card, training=dataclasses.replace(card.training,
                                                                   target="steps"))
    assert steps.vegas_options()["n_events"] == 0
    assert card.integrate_options(2) == {"n": 2000, "iterations": 2}
    assert (card.unweighting.allocation, card.unweighting.settle_events) == ("sigma", 0)


def test_channel_prior_reaches_the_integrand(tmp_path: Path) -> None:
    card = load_run_card(write(tmp_path, '[run]\nprocess = "ee_mumu"\n[training]\n'
                                         'channel_prior = "propagators"\n'))
    assert card.integrand_options() == {"channel_prior": "propagators"}
    assert load_run_card(write(tmp_path, card.to_toml())) == card
    assert_one_line_error(tmp_path, '[run]\nprocess = "ee_mumu"\n[training]\n'
                          'channel_prior = "diagrams"\n', "channel_prior",
                          ["[training] channel_prior", "'diagrams'"])


def test_integration_points_grow_with_the_active_channels(tmp_path: Path) -> None:
    """``points``, or ``points_per_channel`` per active channel where that is more; never
    above the points' own limit."""
    card = load_run_card(write(tmp_path, '[run]\nprocess = "ee_mumu"\n'))
    assert card.integrate_options(2) == {"n": 100_000, "iterations": 5}
    assert card.integrate_options(100) == {"n": 100_000, "iterations": 5}
    assert card.integrate_options(1464) == {"n": 1_464_000, "iterations": 5}
    card = load_run_card(write(tmp_path, '[run]\nprocess = "ee_mumu"\n[integration]\n'
                                         'points = 5000\npoints_per_channel = 0\n'))
    assert card.integrate_options(1464) == {"n": 5000, "iterations": 5}
    card = load_run_card(write(tmp_path, '[run]\nprocess = "ee_mumu"\n[integration]\n'
                                         'points_per_channel = 10_000_000\n'))
    assert card.integrate_options(10**4)["n"] == 10**10
    assert load_run_card(write(tmp_path, card.to_toml())) == card


def test_process_card_defaults_stay_unset_in_integrand_options(tmp_path: Path) -> None:
    card = load_run_card(write(tmp_path, '[run]\nprocess = "ttbar"\n[cuts]\n'))
    assert card.integrand_options() == {"cuts": {}}
    card = load_run_card(write(tmp_path, '[run]\nprocess = "ttbar"\n[scale]\nfixed = 173\n'
                               '[collider]\npdf = "LHToyPDF"\nsqrt_s = 14000\n'))
    assert card.integrand_options() == {"sqrt_s": 14000.0, "pdf": "LHToyPDF", "scale": 173.0}


@pytest.mark.parametrize("text", [FULL, FULL.split("[distributed]")[0] + (
    '[distributed]\nscheduler = "tcp://10.0.0.1:8786"\nshards = 2\n'),
    '[run]\nprocess = "ee_mumu"\n'])
def test_round_trip_through_to_toml(tmp_path: Path, text: str) -> None:
    card = load_run_card(write(tmp_path, text))
    again = parse_run_card(card.to_toml(), "again.toml")
    assert again == card
    # the text carries absolute paths: read from elsewhere, it is the same card
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert load_run_card(write(elsewhere, card.to_toml())) == card


def test_process_given_as_a_path_relative_to_the_card(tmp_path: Path) -> None:
    rel = os.path.relpath(PROCESSES / "ee_mumu", tmp_path)
    card = load_run_card(write(tmp_path, f'[run]\nprocess = "{rel}"\n'))
    assert card.run.process == (PROCESSES / "ee_mumu").resolve()
    assert card.run.output == Path.cwd() / "ee_mumu_run"  # not beside the card
    assert card.load_process().name == "ee_mumu"
    card = load_run_card(write(tmp_path, f'[run]\nprocess = "{rel}/process.toml"\n'))
    assert card.run.process == (PROCESSES / "ee_mumu" / "process.toml").resolve()
    assert card.run.output == Path.cwd() / "ee_mumu_run"  # not beside the card
    assert card.load_process().name == "ee_mumu"
    assert parse_run_card(card.to_toml()) == card


# ---------------------------------------------------------------- errors

ERRORS = [
    # (card text, the text on the line the error must name, what the message says)
    ('[run]\nprocess = "ee_mumu"\n[trainig]\nsteps = 3\n', "[trainig]",
     ["[trainig]", "unknown table", "did you mean 'training'?"]),
    ('[run]\nprocess = "ee_mumu"\n\n[training]\nbatch = 10\nstepz = 3\n', "stepz",
     ["[training] stepz", "unknown key", "did you mean 'steps'?", "expected one of"]),
    ('[run]\nprocess = "ee_mumu"\n[output]\nnevents = 3\n', "nevents",
     ["[output] nevents", "unknown key", "it belongs in [run]"]),
    ('[run]\nprocess = "ee_mumu"\nnevents = "10000"\n', "nevents",
     ["[run] nevents", "the string '10000'", "expected an integer >= 0"]),
    ('[run]\nprocess = "ee_mumu"\n[training]\nsteps = true\n', "steps",
     ["[training] steps", "the boolean true", "expected an integer"]),
    ('[run]\nprocess = "ee_mumu"\n[training]\nsteps = 100.0\n', "steps",
     ["[training] steps", "the float 100.0", "expected an integer"]),
    ('[run]\nprocess = "ee_mumu"\n[training]\nlr = "fast"\n', "lr",
     ["[training] lr", "the string 'fast'", "expected a learning rate > 0"]),
    ('[run]\nprocess = "ee_mumu"\n[collider]\nsqrt_s = true\n', "sqrt_s",
     ["[collider] sqrt_s", "the boolean true"]),
    ('[run]\nprocess = "ee_mumu"\n[training]\nvegas = 1\n', "vegas",
     ["[training] vegas", "the integer 1", "expected true or false"]),
    ('[run]\nprocess = "ee_mumu"\nseed = 2\nnevents = -5\n', "nevents",
     ["[run] nevents", "-5 is out of range", "expected an integer >= 0"]),
    ('[run]\nprocess = "ee_mumu"\n[unweighting]\nquantile = 0.0\n', "quantile",
     ["[unweighting] quantile", "out of range", "expected 0 < quantile <= 1"]),
    ('[run]\nprocess = "ee_mumu"\n[unweighting]\nquantile = 1.5\n', "quantile",
     ["[unweighting] quantile", "out of range"]),
    ('[run]\nprocess = "ee_mumu"\n[unweighting]\nmax_overweight_truncation = 1.0\n',
     "max_overweight_truncation", ["[unweighting] max_overweight_truncation", "out of range",
                                   "expected 0 <= max_overweight_truncation < 1"]),
    ('[run]\nprocess = "ee_mumu"\n[scale]\nalpha_s = nan\n', "alpha_s",
     ["[scale] alpha_s", "not a finite number"]),
    ('[run]\nprocess = "ee_mumu"\ndevice = "gpu"\n', "device",
     ["[run] device", "'gpu' is not allowed", "expected one of 'cpu', 'cuda'"]),
    ('[run]\nprocess = "ee_mumu"\n[training]\nloss = "kl"\n', "loss",
     ["[training] loss", "'variance', 'stratified', 'forward_kl', 'reverse_kl'"]),
    ('[run]\nprocess = "ee_mumu"\n[unweighting]\nmax_weight = "max"\n', "max_weight",
     ["[unweighting] max_weight", "'exact', 'quantile', 'replicas'"]),
    ('[run]\nprocess = "ee_mumu"\n[unweighting]\nsettle_events = -1\n', "settle_events",
     ["[unweighting] settle_events", "an integer >= 0"]),
    ('[run]\nprocess = "ee_mumu"\n[unweighting]\nallocation = "flat"\n', "allocation",
     ["[unweighting] allocation", "'flat' is not allowed", "'auto', 'max_weight', 'sigma'"]),
    ('[run]\nprocess = "ee_mumu"\n[scale]\ndynamical_scale_choice = -1\n',
     "dynamical_scale_choice", ["[scale] dynamical_scale_choice", "-1 is out of range"]),
    ('[run]\nprocess = "ee_mumu"\n[collider]\nsqrt_s = 500.0\nebeam1 = 250.0\n'
     'ebeam2 = 250.0\n', "ebeam1", ["[collider] ebeam1", "together with sqrt_s"]),
    ('[run]\nprocess = "ee_mumu"\n[collider]\nebeam1 = 250.0\nebeam2 = 300.0\n', "ebeam2",
     ["[collider] ebeam2", "300.0 differs from ebeam1 = 250.0", "symmetric beams"]),
    ('[run]\nprocess = "ee_mumu"\n[collider]\nebeam2 = 300.0\n', "ebeam2",
     ["[collider] ebeam2", "given without ebeam1"]),
    ('[run]\nprocess = "ee_mumu"\n[collider]\npdf = "LHToyPDF"\nlhaid = 1\n', "lhaid",
     ["[collider] lhaid", "together with pdf"]),
    ('[run]\nprocess = "ee_mumu"\n[scale]\nfixed = 91.0\ndynamical_scale_choice = 3\n',
     "dynamical_scale_choice", ["[scale] dynamical_scale_choice", "together with fixed"]),
    ('[run]\nprocess = "ee_mumu"\n[distributed]\nscheduler = "tcp://h:1"\n'
     'cluster = "slurm"\n', "cluster", ["[distributed] cluster", "together with scheduler"]),
    ('[run]\nprocess = "ee_mumu"\n[distributed]\nscheduler = "tcp://h:1"\nworkers = 3\n',
     "workers", ["[distributed] workers", "existing scheduler"]),
    ('[run]\nprocess = "ee_mumu"\n[distributed]\noptions = 3\n', "options",
     ["[distributed] options", "the integer 3", "expected a table"]),
    ('[run]\nprocess = "ee_mumu"\n[cuts]\nptl = 10.0\nptll = 5.0\n', "ptll",
     ["[cuts] ptll", "unknown cut name", "did you mean 'ptl'?", "SUPPORTED_CUTS"]),
    ('[run]\nprocess = "ee_mumu"\n[cuts]\nPTL = 10.0\n', "PTL",
     ["[cuts] PTL", "did you mean 'ptl'?"]),
    ('[run]\nprocess = "ee_mumu"\n[cuts]\nptl = "10"\n', "ptl",
     ["[cuts] ptl", "the string '10'"]),
    ('[run]\nseed = 3\n', "[run]", ["[run] process", "missing"]),
    ('[run]\nprocess = "drell-yan"\n', "process",
     ["[run] process", "no built-in process 'drell-yan'", "did you mean 'drell_yan'?"]),
    ('[run]\nprocess = "./nowhere"\n', "process",
     ["[run] process", "no such process directory or card"]),
    ('[run]\nprocess = "ee_mumu"\n[output]\nlhe = "events.txt"\n', "lhe",
     ["[output] lhe", "'events.txt'", "expected a file name ending in .lhe or .lhe.gz"]),
    ('[run]\nprocess = "ee_mumu"\n[output]\ncheckpoint = "a/b.pt"\n', "checkpoint",
     ["[output] checkpoint", "no directory"]),
    ('[run]\nprocess = "ee_mumu"\n[integration]\npoints = 3\niterations = 2\n', "points",
     ["[integration] points", "expected an integer >= 2 * iterations = 4"]),
    # inline tables, dotted keys, tables that are not tables
    ('run = { process = "ee_mumu", nevents = -1 }\n', "run = {",
     ["[run] nevents", "out of range"]),
    ('[run]\nprocess = "ee_mumu"\n[training]\nsteps = 1\n[scale]\n'
     'x.y = 1\n', "x.y", ["[scale] x", "unknown key"]),
    ('training.steps = -2\n[run]\nprocess = "ee_mumu"\n', "training.steps",
     ["[training] steps", "out of range"]),
    ('run = 3\n', "run = 3", ["[run]", "the integer 3", "expected a table"]),
    ('[run]\nprocess = "ee_mumu"\n[training]\nsteps = [\n  1,\n  2,\n]\nwarmup = -1\n',
     "steps = [", ["[training] steps", "an array"]),
]


def assert_one_line_error(tmp_path: Path, text: str, where: str,
                          fragments: list[str]) -> None:
    """The card ``text`` fails with one line naming the file, the line of ``where`` and
    every fragment."""
    path = write(tmp_path, text)
    with pytest.raises(RunCardError) as info:
        load_run_card(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}:{line_of(text, where)}: "), message
    for fragment in fragments:
        assert fragment in message, message


@pytest.mark.parametrize("text,where,fragments", ERRORS)
def test_errors_are_one_line_with_file_line_and_key(tmp_path: Path, text: str, where: str,
                                                    fragments: list[str]) -> None:
    assert_one_line_error(tmp_path, text, where, fragments)


def test_toml_syntax_error_keeps_line_and_column(tmp_path: Path) -> None:
    text = '[run]\nprocess = "ee_mumu"\nseed = = 3\n'
    path = write(tmp_path, text)
    with pytest.raises(RunCardError) as info:
        load_run_card(path)
    message = str(info.value)
    assert message.startswith(f"{path}:3:8: TOML syntax error: "), message
    assert "\n" not in message


def test_missing_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(RunCardNotFoundError, match="nope.toml: no such run card") as info:
        load_run_card(path)
    assert isinstance(info.value, FileNotFoundError)
    assert isinstance(info.value, RunCardError)


def test_from_mapping_without_text_names_the_source_without_a_line() -> None:
    with pytest.raises(RunCardError, match=r"^mapping: \[run\] seed: got the string 'x'"):
        RunCard.from_mapping({"run": {"process": "ee_mumu", "seed": "x"}}, "mapping")
    card = RunCard.from_mapping({"run": {"process": "ee_mumu"}})
    assert card.source is None
    assert card.run.output == Path.cwd().resolve() / "ee_mumu_run"


# ---------------------------------------------------------------- helpers


def test_locator_finds_keys_in_tables_dotted_keys_and_inline_tables() -> None:
    text = ('top = 1\na.b = 2\n[run]\n# seed = 0 (a comment)\nseed = 1\n'
            '"quoted key" = 2\ntext = """\nfake = 1\n"""\nafter = 3\n'
            '[distributed]\noptions = { queue = "q", cores = 4 }\n[ x . "y" ]\nz = 1\n')
    loc = KeyLocator(text)
    assert loc.line("", "top") == 1
    assert loc.line("a", "b") == 2 and loc.line("", "a.b") == 2 and loc.line("a") == 2
    assert loc.line("run") == 3 and loc.line("run", "seed") == 5
    assert loc.line("run", "quoted key") == 6
    assert loc.line("run", "fake") == 3  # inside a multi-line string: not a key
    assert loc.line("run", "after") == 10
    assert loc.line("distributed", "options") == 12
    assert loc.line("distributed.options", "cores") == 12
    assert loc.line("x.y", "z") == 14
    assert loc.line("nowhere", "z") is None
    # a line inside a multi-line array is not a key, the real one after it is
    loc = KeyLocator('[t]\narr = [\n  "k = 1",  # ]\n  ["x"],\n]\nk = 2\n')
    assert loc.line("t", "arr") == 2 and loc.line("t", "k") == 6


@pytest.mark.parametrize("value", [
    "plain", 'quo"te', "back\\slash", "tab\there", "new\nline", "\x7f\x01", "ünïcødé 🎉",
    1, -3, 0.1, 1e-5, 1e16, float("inf"), True, False, [1, 2.5, "x"], [],
    {"a": 1, "b c": {"d": [True]}}, {}])
def test_toml_value_reads_back_the_same(value: object) -> None:
    assert tomllib.loads(f"v = {toml_value(value)}")["v"] == value


# ---------------------------------------------------------- shipped run cards


def shipped() -> list[str]:
    return sorted(p.parent.name for p in PROCESSES.glob("*/run_card.toml"))


def test_every_builtin_process_ships_a_run_card() -> None:
    assert shipped() == builtin_processes()


@pytest.mark.parametrize("name", shipped())
def test_shipped_run_card_reproduces_the_process_defaults(name: str) -> None:
    card = load_run_card(PROCESSES / name / "run_card.toml")
    process = load_process(name)
    assert card.run.process == name
    assert card.load_process().name == process.name
    d = process.defaults
    assert card.collider.sqrt_s == d.sqrt_s
    assert card.collider.pdf == d.pdf
    assert card.collider.lhaid is None
    assert card.scale.fixed == d.scale
    assert card.scale.dynamical_scale_choice == d.dynamical_scale_choice
    assert card.cuts == process.cuts
    assert card.output.lhe.endswith(".lhe.gz")
    assert card.run.nevents == 10_000
    assert 100 <= card.training.steps <= 200 and 2048 <= card.training.batch <= 4096
    assert parse_run_card(card.to_toml()) == card


# ------------------------------------------------------------- limits of integer keys

_RUN = '[run]\nprocess = "ee_mumu"\n'

LIMIT_ERRORS = [
    # (card text, the key the error must name, what the message says)
    (_RUN + "nevents = 1_000_000_001\n", "nevents",
     ["[run] nevents", "the integer 1000000001 is out of range", "<= 1000000000 (10**9)"]),
    (_RUN + "seed = 9223372036854775808\n", "seed",
     ["[run] seed", "out of range", ">= 0 and <= 9223372036854775807 (2**63 - 1)"]),
    (_RUN + "seed = -1\n", "seed", ["[run] seed", "the integer -1 is out of range"]),
    (_RUN + "[training]\nsteps = 1_000_001\n", "steps",
     ["[training] steps", "out of range", "<= 1000000 (10**6)"]),
    (_RUN + "[training]\nbatch = 10_000_001\n", "batch",
     ["[training] batch", "out of range", ">= 1 and <= 10000000 (10**7)"]),
    (_RUN + "[training]\nvegas_points = 100_000_001\n", "vegas_points",
     ["[training] vegas_points", "out of range", "<= 100000000 (10**8)"]),
    (_RUN + "[integration]\npoints = 10_000_000_001\n", "points",
     ["[integration] points", "out of range", ">= 2 * iterations = 10 and <= "
      "10000000000 (10**10)"]),
    (_RUN + "[integration]\npoints_per_channel = -1\n", "points_per_channel",
     ["[integration] points_per_channel", "out of range", ">= 0 and <= 10000000 (10**7)"]),
    (_RUN + "[distributed]\nshards = 10_001\n", "shards",
     ["[distributed] shards", "out of range", ">= 1 and <= 10000 (10**4)"]),
    # a float where an integer is expected, even a whole one
    (_RUN + "nevents = 1e12\n", "nevents",
     ["[run] nevents", "got the float 1000000000000.0", "expected an integer >= 0",
      "write 1_000_000_000_000"]),
    (_RUN + "nevents = 1e6\n", "nevents", ["got the float 1000000.0", "write 1_000_000"]),
    (_RUN + "[training]\nsteps = 2.5\n", "steps", ["[training] steps", "the float 2.5"]),
    (_RUN + "[integration]\npoints = 1e5\n", "points",
     ["[integration] points", "the float 100000.0", "write 100_000"]),
]


@pytest.mark.parametrize("text,where,fragments", LIMIT_ERRORS)
def test_integer_keys_are_bounded(tmp_path: Path, text: str, where: str,
                                  fragments: list[str]) -> None:
    assert_one_line_error(tmp_path, text, where, fragments)


def test_integer_keys_at_their_limits_are_fine(tmp_path: Path) -> None:
    card = load_run_card(write(tmp_path, _RUN + (
        "seed = 9223372036854775807\nnevents = 1_000_000_000\n"
        "[training]\nsteps = 1_000_000\nbatch = 10_000_000\nvegas_points = 100_000_000\n"
        "[integration]\npoints = 10_000_000_000\n[distributed]\nshards = 10_000\n")))
    assert card.run.seed == 2**63 - 1 and card.run.nevents == 10**9
    assert (card.training.steps, card.training.batch, card.training.vegas_points) == (
        10**6, 10**7, 10**8)
    assert card.integration.points == 10**10
    assert card.distributed is not None and card.distributed.shards == 10_000
    # not more shards than events is the command's check (madnis_py.cli), where -n and
    # --shards replace the card's values: the card alone accepts it
    assert parse_run_card(card.to_toml()) == card

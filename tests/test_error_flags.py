"""Library messages name arguments in backticks; the command line shows them as its flags.

``ann2snn.cli.errors.to_flags`` turns ``"`int_bits`"`` into ``--int-bits``. These tests read the
library's source and check that every name it puts in backticks becomes an option some command really
has, so the translation can never print a flag that does not exist.
"""

import ast
import pathlib

import pytest
from click.testing import CliRunner

from ann2snn.ann.train import DEFAULTS as TRAIN_ANN_DEFAULTS
from ann2snn.cli.errors import FLAGS, flag, flag_errors, to_flags
from ann2snn.cli.main import cli, main
from ann2snn.pipelines.train_snn import DEFAULTS as TRAIN_SNN_DEFAULTS
from ann2snn.plumbing.errors import ARGUMENT, UserError

ROOT = pathlib.Path(__file__).resolve().parent.parent
LIBRARY = sorted([*(ROOT / "ann2snn").rglob("*.py"), *(ROOT / "models").rglob("*.py")])
#: files whose messages put a computed name in backticks (f"`{key}`"): the key is always a config key
#: of train-ann or train-snn, checked by test_config_keys_are_flags
COMPUTED_NAMES = {"ann2snn/ann/train.py", "ann2snn/pipelines/train_snn.py", "ann2snn/pipelines/ablation.py"}


def all_options() -> dict[str, set[str]]:
    """Every command's option strings (``--ops`` and ``--no-ops`` alike), by command name."""
    out = {}
    for name, command in cli.commands.items():
        out[name] = {o for p in command.params for o in (*p.opts, *p.secondary_opts) if o.startswith("-")}
    return out


def docstrings(tree) -> set[int]:
    """ids of the string constants that are docstrings or other bare string statements."""
    return {id(node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)}


def backticked(path: pathlib.Path) -> tuple[set[str], list[int]]:
    """(names written in backticks in the file's string literals, lines where an f-string backticks a
    variable, ``f"`{key}`"``: a computed name; a backticked expression such as ``{prov['command']}`` is data)."""
    tree = ast.parse(path.read_text(), str(path))
    skip = docstrings(tree)
    names, computed = set(), []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            names |= {m.group(1) for m in ARGUMENT.finditer(node.value)}
        if isinstance(node, ast.JoinedStr):
            parts = node.values
            for before, value, after in zip(parts, parts[1:], parts[2:]):
                if (isinstance(value, ast.FormattedValue) and isinstance(value.value, ast.Name)
                        and isinstance(before, ast.Constant)
                        and isinstance(after, ast.Constant) and str(before.value).endswith("`")
                        and str(after.value).startswith("`")):
                    computed.append(node.lineno)
    return names, computed


def test_to_flags():
    assert to_flags("bad `threshold` 'x': use lambda, max or percentile:P") == \
        "bad --threshold 'x': use lambda, max or percentile:P"
    assert to_flags("`neuron` if is MBIF(1,0): drop `int_bits`/`frac_bits`, or use `neuron` mbif") == \
        "--neuron if is MBIF(1,0): drop --int-bits/--frac-bits, or use --neuron mbif"
    assert to_flags("`T` must be >= 1; `neurons`, `checkpoints`, `v_inits`") == \
        "--T must be >= 1; --neuron, --checkpoint, --v-init"
    assert to_flags("`out_dir` x is a file") == "--out x is a file"
    # command lines, RST literals and plain text are left alone
    for text in ("(from `ann2snn train-snn`)", "``width``", "width must be > 0", "`1+3`", "a ` b"):
        assert to_flags(text) == text


def test_every_backticked_name_is_an_option():
    """Every name the library writes in backticks (and every name in FLAGS) becomes a real option."""
    options = set().union(*all_options().values())
    seen = {}
    for path in LIBRARY:
        names, _ = backticked(path)
        for name in names:
            seen.setdefault(name, str(path.relative_to(ROOT)))
    assert len(seen) > 20  # the scan finds the library's messages
    bad = {name: (where, flag(name)) for name, where in seen.items() if flag(name) not in options}
    assert not bad, f"backticked names with no such CLI option (name: file, flag): {bad}"
    assert all(f in options for f in FLAGS.values())
    assert all(flag(name) in options for name in FLAGS)


def test_computed_names_only_where_they_are_config_keys():
    where = {str(p.relative_to(ROOT)) for p in LIBRARY if backticked(p)[1]}
    assert where <= COMPUTED_NAMES, where - COMPUTED_NAMES


def test_config_keys_are_flags():
    """train-ann's and train-snn's config keys (the computed names) and option names translate to their flags."""
    for command, keys in (("train-ann", TRAIN_ANN_DEFAULTS), ("train-snn", TRAIN_SNN_DEFAULTS)):
        params = {p.name: p for p in cli.commands[command].params}
        for key in keys:
            assert key in params and flag(key) in params[key].opts, (command, key)
        for p in params.values():
            if p.opts[0].startswith("--") and p.expose_value:
                assert flag(p.name) in p.opts, (command, p.name)


def test_library_messages_name_no_flags():
    """No UserError message in the library spells a flag itself (the CLI adds them)."""
    import re

    spelled = []
    for path in LIBRARY:
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "UserError":
                for part in ast.walk(node):
                    if isinstance(part, ast.Constant) and isinstance(part.value, str) \
                            and re.search(r"(^|[\s(/])--[a-zA-Z]", part.value):
                        spelled.append(f"{path.relative_to(ROOT)}:{part.lineno}")
    assert not spelled, spelled


def test_the_cli_prints_flags(capsys):
    """main() translates a library error raised outside any command body (an eager option's callback)."""
    assert main(["sweep", "--threads", "0", "--checkpoint", "x", "--out", "y"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("Error: --threads must be 'auto' or a whole number") and "`" not in err


def test_a_command_run_on_its_own_raises_flags(tmp_path):
    from ann2snn.cli.train_snn import train_snn_cmd

    result = CliRunner().invoke(train_snn_cmd, ["--dataset", "dvs-gesture", "--augment", "crop-flip",
                                                "--out", str(tmp_path / "r")])
    assert isinstance(result.exception, UserError) and str(result.exception).startswith("--augment crop-flip is for CIFAR")


def test_flag_errors_keeps_the_exception():
    @flag_errors
    def body():
        raise UserError("`width` must be > 0, got 0")

    with pytest.raises(UserError, match="^--width must be > 0, got 0$"):
        body()


def test_python_callers_read_argument_names():
    from ann2snn.conversion.calibrate import parse_threshold

    with pytest.raises(UserError, match="^bad `threshold` 'nope'"):
        parse_threshold("nope")

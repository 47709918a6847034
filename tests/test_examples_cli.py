"""Every flag of the examples is checked by argparse: a bad value exits with code 2 and a
message naming the flag, before any data is loaded; --help shows the script's description.

The rejections and --help run in this process (``runpy``: argparse exits before any work starts);
one rejection per example and one --help also run in a subprocess, to see the real exit code and
output.
"""
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

BAD = {
    "fashion_mnist.py": [
        ("--epochs", "0"), ("--epochs", "-3"), ("--epochs", "two"), ("--batch-size", "0"),
        ("--batch-size", "1.5"), ("--lr", "0"), ("--lr", "-0.1"), ("--lr", "nan"), ("--lr", "inf"),
        ("--seed", "-1"), ("--seed", "x"), ("--dropout", "1"), ("--dropout", "-0.2"),
        ("--patience", "0"),
    ],
    "cifar10_classifiers.py": [
        ("--softmax-epochs", "0"), ("--two-layer-epochs", "-1"), ("--ablation-epochs", "0"),
        ("--ablation-seeds", "0"), ("--headline-seeds", "0"), ("--extra-hidden", "0"),
        ("--val-size", "0"), ("--preprocess", "zca"), ("--jobs", "0"), ("--threads-per-worker", "0"),
        ("--seed", "-1"),
    ],
    "fooling_images.py": [
        ("--n-images", "0"), ("--n-show", "0"), ("--epochs", "0"), ("--hidden", "0"),
        ("--batch-size", "0"), ("--lr", "0"), ("--lr-decay", "0"), ("--lr-decay", "1.5"),
        ("--momentum", "-1"), ("--step-size", "0"), ("--max-steps", "0"), ("--target", "banana"),
        ("--target", "10"), ("--cifar", "png"), ("--seed", "-1"),
    ],
}
CASES = [(script, flag, value) for script, bad in BAD.items() for flag, value in bad]


@pytest.mark.parametrize("script, flag, value", CASES, ids=[f"{s[:-3]}{f}={v}" for s, f, v in CASES])
def test_bad_flag_is_rejected_by_argparse(run_example, tmp_path, script, flag, value):
    code, _, err = run_example(script, flag, value, "--out", tmp_path / "o")
    assert code == 2, (code, err)
    assert f"argument {flag}" in err, err
    assert value in err or "expected" in err or "invalid choice" in err, err
    assert not (tmp_path / "o").exists(), "nothing may be written before the arguments are checked"


@pytest.mark.parametrize("script, argv, flag", [
    ("fooling_images.py", ["--momentum", "1"], "--momentum"),
    ("cifar10_classifiers.py", ["--quick", "--val-size", "5000"], "--val-size"),
])
def test_checks_after_parsing_also_exit_2(run_example, tmp_path, script, argv, flag):
    code, _, err = run_example(script, *argv, "--out", tmp_path / "o")
    assert code == 2 and f"argument {flag}" in err, err


@pytest.mark.parametrize("script, title", [
    ("fashion_mnist.py", "Fashion-MNIST: a small CNN"),
    ("cifar10_classifiers.py", "CIFAR-10: a softmax classifier"),
    ("fooling_images.py", "Fooling images for a two-layer MLP"),
])
def test_help_shows_description_and_every_flag_documented(monkeypatch, run_example, script, title):
    monkeypatch.setenv("COLUMNS", "200")
    if script == "fashion_mnist.py":      # one in a subprocess: the real exit code and output
        p = subprocess.run([sys.executable, str(EXAMPLES / script), "--help"], capture_output=True,
                           text=True, timeout=120)
        code, out, err = p.returncode, p.stdout, p.stderr
    else:
        code, out, err = run_example(script, "--help")
    assert code == 0, err
    assert title in out
    assert "%%" not in out
    flags = [line.split()[0].rstrip(",") for line in out.splitlines()
             if line.startswith("  --") and not line.startswith("  --help")]
    assert "--quick" in flags and "--seed" in flags and "--out" in flags
    # every flag has a help text (the line holds more than the flag and its metavar, or the next does)
    lines = out.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("  --") and not line.startswith("  --help"):
            words = line.split()
            has_text = len(words) > 2 or (i + 1 < len(lines) and lines[i + 1].startswith(" " * 10))
            assert has_text, f"{script}: {line!r} has no help text"
    if script != "cifar10_classifiers.py":
        assert "(default: 128)" in out          # defaults shown


@pytest.mark.parametrize("script", sorted(BAD))
def test_bad_flag_in_a_subprocess_exit_code_2(script):
    p = subprocess.run([sys.executable, str(EXAMPLES / script), "--seed", "-5"], capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 2
    assert "argument --seed" in p.stderr and "Traceback" not in p.stderr


def test_description_percent_signs_reach_help_as_written(tmp_path, capsys):
    """A '%' in a script's first markdown cell is shown once in --help, not doubled."""
    C = _common_module()
    script = tmp_path / "demo.py"
    script.write_text("# %% [markdown]\n# # Demo\n# reaches 93.8% accuracy\n\n# %%\nx = 1\n")
    text = C.script_description(str(script))
    assert text == "Demo\nreaches 93.8% accuracy"
    with pytest.raises(SystemExit):
        C.base_parser(text, "demo").parse_args(["--help"])
    out = capsys.readouterr().out
    assert "93.8% accuracy" in out and "%%" not in out


def _common_module():
    sys.path.insert(0, str(EXAMPLES))
    try:
        import _common as C
    finally:
        sys.path.remove(str(EXAMPLES))
    return C


@pytest.mark.parametrize("name, good, bad", [
    ("positive_int", [("3", 3)], ["0", "-1", "1.5", "x", ""]),
    ("nonnegative_int", [("0", 0)], ["-1", "2.0"]),
    ("seed_int", [("0", 0), (str(2 ** 63 - 1), 2 ** 63 - 1)], ["-1", str(2 ** 63)]),
    ("positive_float", [("1e-3", 1e-3)], ["0", "-2", "nan", "inf"]),
    ("nonnegative_float", [("0", 0.0)], ["-1e-9", "nan"]),
    ("unit_interval", [("0", 0.0), ("0.5", 0.5)], ["1", "-0.1", "nan"]),
    ("closed_unit_interval", [("0", 0.0), ("1", 1.0)], ["1.01", "-0.1", "nan"]),
    ("decay_factor", [("1", 1.0), ("0.5", 0.5)], ["0", "1.5"]),
])
def test_number_types_accept_and_reject(name, good, bad):
    import argparse

    parse = getattr(_common_module(), name)
    for text, value in good:
        assert parse(text) == value and type(parse(text)) is type(value)
    for text in bad:
        with pytest.raises(argparse.ArgumentTypeError, match=f"expected .*got {text!r}"):
            parse(text)


def test_number_list():
    import argparse

    C = _common_module()
    ints = C.number_list(int, "integers")
    assert ints("32,64, 128") == [32, 64, 128]
    temps = C.number_list(float, "temperatures", allow_empty=True, distinct=True)
    assert temps("") == [] and temps("0.05,0.5") == [0.05, 0.5]
    for parse, text in [(ints, ""), (ints, "32,0"), (ints, "1.5"), (ints, "a,b"), (temps, "0.1,0.1"),
                        (temps, "0.1,inf"), (temps, "-1")]:
        with pytest.raises(argparse.ArgumentTypeError, match="expected comma-separated"):
            parse(text)

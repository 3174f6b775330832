"""The command line: demo output and clear errors with exit status 2."""

import pytest

from bayesgmm import cli


def test_demo_prints_the_choice_and_writes_the_table(tmp_path, capsys):
    assert cli.main(["demo", "--methods", "em", "--quiet", "--out", str(tmp_path / "demo")]) == 0
    out = capsys.readouterr().out
    assert "pick K=2" in out and "report:" in out
    assert (tmp_path / "demo" / "report.html").exists()
    assert (tmp_path / "demo" / "report.md").exists()


@pytest.fixture
def messy_csv(tmp_path):
    path = tmp_path / "data.csv"
    lines = ["x,y,label,empty"] + [f"{i % 7},{(i * 3) % 11},n{i},"for i in range(40)]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["fit", "missing.csv"], "no such file"),
        (["fit", "{csv}"], "column 'label' is not numeric"),
        (["fit", "{csv}", "--columns", "x,empty"], "column 'empty' holds no numbers"),
        (["fit", "{csv}", "--columns", "x,y", "--k", "3-1"], "--k must be a range"),
        (["fit", "{csv}", "--columns", "x,y", "--methods", "em,magic"], "'magic'"),
        (["fit", "{empty}"], "is empty"),
    ],
)
def test_bad_input_exits_2_with_a_message(messy_csv, tmp_path, capsys, argv, message):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    argv = [a.format(csv=messy_csv, empty=empty) for a in argv]
    assert cli.main(argv) == 2
    assert message in capsys.readouterr().err


def test_fit_works_once_columns_are_chosen(messy_csv, tmp_path, capsys):
    assert cli.main(["fit", str(messy_csv), "--columns", "x,y", "--k", "1-2", "--quiet",
                     "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "BIC (em)" in out and "report:" in out
    assert (tmp_path / "out" / "report_files" / "model_selection.csv").exists()


def test_help_for_each_command(capsys):
    for argv in (["--help"], ["demo", "--help"], ["fit", "--help"]):
        with pytest.raises(SystemExit) as stop:
            cli.main(argv)
        assert stop.value.code == 0
    assert "--columns" in capsys.readouterr().out

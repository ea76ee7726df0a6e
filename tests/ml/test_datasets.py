"""The CSV adapter, the synthetic generator, the CLI, and a slice of the real file (skipped when it is absent)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ml.__main__ import main
from ml.datasets import DataMissingError, load_interactions, synthetic
from ml.evaluation import evaluate, prepare
from ml.recalls import Blend, Popularity

from .conftest import write_csv


def test_the_csv_becomes_sequences_ordered_by_seq(tmp_path: Path) -> None:
    path = tmp_path / "interactions.csv"
    path.write_text("user_id,item_id,seq\n2,30,2\n1,10,1\n2,10,1\n1,20,3\n1,30,2\n3,40,1\n")
    data = load_interactions(path)
    assert data.user_ids.tolist() == [1, 2, 3] and data.item_ids.tolist() == [10, 20, 30, 40]
    assert [data.item_ids[s].tolist() for s in data.sequences] == [[10, 30, 20], [10, 30], [40]]
    assert data.n_items == 4 and data.n_interactions == 6
    assert len(load_interactions(path, max_users=2).sequences) == 2


def test_a_missing_file_names_the_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEXUSCART_EVAL_DATA", str(tmp_path / "absent.csv"))
    with pytest.raises(DataMissingError, match="NEXUSCART_EVAL_DATA"):
        load_interactions()


def test_a_wrong_header_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("user,item\n1,2\n")
    with pytest.raises(ValueError, match="header"):
        load_interactions(path)


def test_synthetic_sequences_are_reproducible_and_well_formed() -> None:
    one, two = synthetic(n_users=200, seed=3), synthetic(n_users=200, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(one.sequences, two.sequences, strict=True))
    assert all(3 <= len(s) <= 20 and len(set(s.tolist())) == len(s) for s in one.sequences)
    assert max(int(s.max()) for s in one.sequences) < one.n_items


def test_the_cli_prints_the_table_and_ends_with_the_served_pipeline(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    path = write_csv(tmp_path / "synthetic.csv", synthetic(n_users=400, n_items=300, seed=1).sequences)
    assert main(["eval", "--data", str(path), "--users", "200", "--seed", "1"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert any(line.startswith("SASRec (published") and "0.741" in line and "0.536" in line for line in lines)
    assert any(line.startswith("co-occurrence") for line in lines)
    last = lines[-1]
    assert last.startswith("nexuscart HR@10=") and len(last.split("=")[1].split()[0]) == 5


def test_the_cli_fails_clearly_without_data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "--data", str(tmp_path / "absent.csv")]) == 2
    assert "evaluation data not found" in capsys.readouterr().err


def test_a_slice_of_the_real_file(real_data_file: Path) -> None:
    data = load_interactions(real_data_file, max_users=2000)
    assert len(data.sequences) == 2000
    task = prepare(data.sequences, data.n_items, seed=0)
    assert len(task.users) > 1900
    popularity = evaluate(Popularity(), task)
    blend = evaluate(Blend(tune_users=1000), task)
    assert 0.25 < popularity.hr < 0.7
    assert blend.hr > popularity.hr and blend.ndcg > popularity.ndcg

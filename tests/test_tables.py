import csv
import io

import pytest

from vqlib.tables import rows_to_csv


def test_rows_round_trip_through_csv(tmp_path):
    rows = [{"supersample_seed": 0, "mask_seed": 3, "loss": 0.25}, {"supersample_seed": 1, "mask_seed": 4, "loss": 0.5}]
    text = rows_to_csv(rows, tmp_path / "t.csv")
    back = list(csv.DictReader(io.StringIO(text)))
    assert [float(r["loss"]) for r in back] == [0.25, 0.5] and back[1]["mask_seed"] == "4"
    with open(tmp_path / "t.csv", newline="") as fh:
        assert fh.read() == text


def test_empty_rows_are_an_error():
    with pytest.raises(ValueError, match="rows"):
        rows_to_csv([])

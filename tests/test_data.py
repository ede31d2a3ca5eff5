"""Loading labelled sentences from local TSV/CSV/JSONL files and hub-format folders, offline."""

import json

import pytest

from robusttext import RobustTextError
from robusttext.data import Example, check_labels, load_examples


def write(path, text):
    path.write_text(text)
    return path


def test_tsv_like_sst2(tmp_path):
    # GLUE SST-2 style: header, tabs, quotes left alone, trailing space kept.
    path = write(tmp_path / "dev.tsv", 'sentence\tlabel\nit \'s a "charming" film . \t1\n'
                                       "\nbleak and desperate \t0\n")
    examples = load_examples(path)
    assert examples == [Example('it \'s a "charming" film . ', 1),
                        Example("bleak and desperate ", 0)]
    assert examples[1].origin.endswith("dev.tsv:4")


def test_csv_jsonl_columns_and_limit(tmp_path):
    csv_path = write(tmp_path / "d.csv", 'id,review,label\n1,"good, really",1\n2,bad,0\n')
    assert load_examples(csv_path, text_column="review") == [Example("good, really", 1),
                                                            Example("bad", 0)]
    rows = [{"text": "fine", "label": 1}, {"text": "dull", "label": "0"}, {"text": "ok",
                                                                           "label": 1}]
    jsonl = write(tmp_path / "d.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    assert load_examples(jsonl, limit=2) == [Example("fine", 1), Example("dull", 0)]
    tsv = write(tmp_path / "s.tsv", "polarity\ttext\n1\tgreat\n")
    assert load_examples(tsv, label_column="polarity") == [Example("great", 1)]


@pytest.mark.parametrize(("name", "content", "message"), [
    ("nolabel.tsv", "sentence\tscore\ngood\t1\n", "no label column 'label'"),
    ("notext.tsv", "words\tlabel\ngood\t1\n", "no text column"),
    ("empty.tsv", "", "the file is empty"),
    ("header_only.tsv", "sentence\tlabel\n", "no examples"),
    ("float.tsv", "sentence\tlabel\ngood\t1\nbad\t0.5\n", "float.tsv:3: label '0.5' is not an"),
    ("negative.tsv", "sentence\tlabel\ngood\t-1\n", "negative.tsv:2: label -1 is negative"),
    ("fields.tsv", "sentence\tlabel\ngood\t1\nbad\t0\textra\n", "fields.tsv:3: 3 fields"),
    ("blank.tsv", "sentence\tlabel\n  \t1\n", "blank.tsv:2: the text is empty"),
    ("bad.jsonl", '{"text": "a", "label": 1}\n{"text": "b", label: 0}\n',
     "bad.jsonl:2: not valid JSON"),
    ("list.jsonl", "[1, 2]\n", "list.jsonl:1: expected a JSON object"),
    ("nolabel.jsonl", '{"text": "a"}\n', "nolabel.jsonl:1: no label column"),
    ("bool.jsonl", '{"text": "a", "label": true}\n', "label True is not an integer"),
])
def test_bad_files(tmp_path, name, content, message):
    with pytest.raises(RobustTextError, match=message.replace("(", r"\(").replace(".", r"\.")):
        load_examples(write(tmp_path / name, content))


def test_missing_file_and_split(tmp_path):
    with pytest.raises(RobustTextError, match="no such file"):
        load_examples(tmp_path / "missing.tsv")
    path = write(tmp_path / "d.tsv", "sentence\tlabel\ngood\t1\n")
    with pytest.raises(RobustTextError, match="applies to hub data sets"):
        load_examples(path, split="train")
    with pytest.raises(RobustTextError, match="limit"):
        load_examples(path, limit=0)


def test_labels_in_range():
    check_labels([Example("a", 0), Example("b", 1)], 2)
    with pytest.raises(RobustTextError, match="d.tsv:3: label 2 is out of range"):
        check_labels([Example("a", 0), Example("b", 2, "d.tsv:3")], 2)


def test_hub_format_folder(tmp_path):
    """A folder of split files goes through datasets.load_dataset, as a hub id does."""
    datasets = pytest.importorskip("datasets")
    folder = tmp_path / "sst2"
    folder.mkdir()
    datasets.Dataset.from_dict({"idx": [0, 1], "sentence": ["a gem .", "a dud ."],
                                "label": [1, 0]}).to_parquet(str(folder / "validation.parquet"))
    datasets.Dataset.from_dict({"idx": [0], "sentence": ["unlabelled"], "label": [-1]}
                               ).to_parquet(str(folder / "test.parquet"))
    examples = load_examples(folder, limit=5)
    assert examples == [Example("a gem .", 1), Example("a dud .", 0)]
    assert "[validation]" in examples[0].origin
    with pytest.raises(RobustTextError, match="label -1 is negative"):
        load_examples(folder, split="test")
    with pytest.raises(RobustTextError, match="no split 'dev'"):
        load_examples(folder, split="dev")
    with pytest.raises(RobustTextError, match="no text column 'review'"):
        load_examples(folder, text_column="review")


def test_unknown_hub_id_offline():
    with pytest.raises(RobustTextError, match="cannot load data set"):
        load_examples("no-such-user/no-such-dataset-robusttext")

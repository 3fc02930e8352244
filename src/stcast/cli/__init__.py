"""The `stcast` command line: one thin module per command family, each declaring its arguments by its handler.

    common.py    argument types and groups, datasets and tables, output checks
    catalog.py   datasets, models, backbones
    train.py     train, evaluate
    deploy.py    forecast, impute
    bench.py     benchmark, demo
    pretrain.py  pretrain
    pictures.py  plot, describe

Work that is not command-line work lives below (engine, bench, data); a handler reads its flags, calls down, prints.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings

import torch

from stcast import __version__
from stcast.cli import bench, catalog, common, deploy, pictures, pretrain, train
from stcast.errors import StcastError

COMMAND_FAMILIES = (catalog, train, deploy, bench, pretrain, pictures)  # in the order `stcast --help` lists them


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="stcast", allow_abbrev=False,
                                description="stcast: spatio-temporal forecasting and imputation with language-model "
                                            "methods beside strong baselines, on one data layer and protocol")
    p.add_argument("--version", action="version", version=f"stcast {__version__}")
    p.add_argument("--threads", type=common.positive_int, default=None,
                   help="torch CPU threads (default: torch's choice)")
    p.add_argument("--offline", action="store_true",
                   help="never contact the Hugging Face hub (as HF_HUB_OFFLINE=1): backbones must be on this machine")
    sub = p.add_subparsers(dest="command", required=True)
    for family in COMMAND_FAMILIES:
        family.register(sub)
    for command in sub.choices.values():  # `--device cuda` is not taken as an abbreviation of --devices
        command.allow_abbrev = False
    return p


_plain_format = warnings.formatwarning


def _format_warning(message, category, filename, lineno, line=None) -> str:
    """Our warnings as one `stcast: warning:` line; library deprecations keep their usual form."""
    if category is UserWarning:
        return f"stcast: warning: {message}\n"
    return _plain_format(message, category, filename, lineno, line)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if any(os.environ.get(k, "0") != "0" for k in ("RANK", "LOCAL_RANK", "NODE_RANK")):
        # a distributed run's other processes: rank 0 prints the tables and warnings once (errors still show)
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - for the life of this process
        warnings.simplefilter("ignore")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.offline:
        os.environ["HF_HUB_OFFLINE"] = os.environ["STCAST_OFFLINE"] = "1"  # read by nn.backbones.offline()
    warnings.formatwarning = _format_warning
    try:
        common.check_no_clobber(args)
        return args.func(args)
    except StcastError as e:
        print(f"stcast: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `stcast models | head`: the reader left, nothing to say
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - silence the flush at exit
        return 0
    except OSError as e:  # a file the user named: unreadable, a directory, no space left, ...
        where = f"{e.filename}: " if getattr(e, "filename", None) else ""
        print(f"stcast: error: {where}{e.strerror or e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("stcast: interrupted", file=sys.stderr)
        return 130
    finally:
        warnings.formatwarning = _plain_format


if __name__ == "__main__":
    sys.exit(main())

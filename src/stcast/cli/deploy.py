"""`stcast forecast` and `stcast impute`: a saved model (or a statistical imputer) on new data, written as a table."""

from __future__ import annotations

import numpy as np

from stcast.cli.common import check_table_out, data_args, positive_int, resolve_dataset, write_table
from stcast.engine.checkpoint import check_data_fits
from stcast.errors import StcastError
from stcast.task import Task


def cmd_forecast(args) -> int:
    from stcast.engine.checkpoint import load_model
    from stcast.engine.inference import forecast_frame

    check_table_out(args.out)
    model, scaler, info = load_model(args.model_file)
    if Task.parse(info["task"]) is not Task.FORECAST:
        raise StcastError(f"{args.model_file} was trained for {info['task']}, not forecasting")
    data = resolve_dataset(args.dataset or info["protocol"].get("source") or info["dataset"], args,
                           info["protocol"].get("reading"))
    check_data_fits(model, data, info)
    df = forecast_frame(model, scaler, data, end=args.end, keep_empty=args.keep_empty)
    H, N, C = model.spec.horizon, data.num_nodes, data.num_channels
    times = df["timestamp"].iloc[[0, -1]].to_numpy()
    if (data.extra.get("source_columns") or {}).get("utc"):  # the input's times had offsets: read as UTC, said so
        df["timestamp"] = df["timestamp"].dt.tz_localize("UTC")
    write_table(df, args.out)
    print(f"{len(df)} rows ({H} steps x {N} nodes x {C} channels) written to {args.out} "
          f"({str(times[0])[:16]} .. {str(times[-1])[:16]})")
    return 0


def cmd_impute(args) -> int:
    from stcast.engine.checkpoint import load_model
    from stcast.engine.inference import impute_array, statistical_imputer, with_observed_as_given

    check_table_out(args.out)
    if args.model_file:
        model, scaler, info = load_model(args.model_file)
        data = resolve_dataset(args.dataset, args, info["protocol"].get("reading"), keep_exact=True)
        if Task.parse(info["task"]) is not Task.IMPUTE:
            raise StcastError(f"{args.model_file} was trained for {info['task']}, not imputation")
        check_data_fits(model, data, info)
    else:
        data = resolve_dataset(args.dataset, args, keep_exact=True)
        model, scaler = statistical_imputer(args.method, data, args.window)
    filled, observed = impute_array(model, scaler, data, args.batch_size, keep_empty=args.keep_empty)
    filled = with_observed_as_given(filled, observed, data)
    n_missing = int((~observed).sum())
    n_filled = int((~observed & np.isfinite(filled)).sum())  # a series never observed stays NaN (see impute_array)
    write_table(imputed_table(data, filled, observed), args.out)
    left = f" ({n_missing - n_filled} left NaN: series never observed)" if n_filled < n_missing else ""
    print(f"{n_filled} missing entries of {observed.size} filled{left}; written to {args.out}")
    return 0


def imputed_table(data, filled: np.ndarray, observed: np.ndarray):
    """The filled series laid out as the user's table was: a wide table back as wide (its time column's name), a
    long one as long (its own column names, one row per time and sensor, `imputed` marking the filled entries);
    time-zone-aware timestamps (read as UTC) written back as UTC, with their offset. A registered dataset: wide
    for one channel, long with `imputed` for several (`timestamp`, `node`, `channel`, `value`)."""
    import pandas as pd

    src = data.extra.get("source_columns") or {"layout": "wide" if data.num_channels == 1 else "long",
                                               "time": "timestamp", "node": "node", "value": "value",
                                               "channel": "channel", "utc": False}
    times = pd.DatetimeIndex(data.timestamps)
    times = times.tz_localize("UTC") if src["utc"] else times
    nodes = data.node_ids or [str(i) for i in range(data.num_nodes)]
    T, N, C = filled.shape
    if src["layout"] == "wide" and C == 1:
        df = pd.DataFrame(filled[:, :, 0], columns=nodes)
        df.insert(0, src["time"], times)
        return df
    cols = {src["time"]: np.repeat(times, N * C), src["node"]: np.tile(np.repeat(nodes, C), T)}
    if C > 1 or src["channel"]:
        cols[src["channel"] or "channel"] = np.tile(list(data.meta.channels), T * N)
    return pd.DataFrame({**cols, src["value"]: filled.reshape(-1), "imputed": (~observed).reshape(-1)})


def register(sub) -> None:
    sp = sub.add_parser("forecast", help="forecast the steps after a window; writes CSV/Parquet")
    sp.add_argument("--model-file", required=True)
    sp.add_argument("--dataset", default=None)
    sp.add_argument("--end", type=positive_int, default=None, help="window end step (default: the end of the data)")
    sp.add_argument("--keep-empty", action="store_true",
                    help="keep forecasts of sensors whose input window is all missing (default: NaN, named in a "
                         "warning), marked in an empty_input column")
    sp.add_argument("--out", required=True)
    data_args(sp)
    sp.set_defaults(func=cmd_forecast)

    sp = sub.add_parser("impute", help="fill the missing entries of a series; writes CSV/Parquet")
    sp.add_argument("--dataset", required=True)
    sp.add_argument("--model-file", default=None, help="a model trained with --task impute")
    sp.add_argument("--method", default="interpolate", help="without a model file: interpolate, mean-impute, ha")
    sp.add_argument("--window", type=positive_int, default=24)
    sp.add_argument("--batch-size", type=positive_int, default=64)
    sp.add_argument("--keep-empty", action="store_true",
                    help="keep the model's values for sensors never observed in the series (default: NaN, named "
                         "in a warning)")
    sp.add_argument("--out", required=True)
    data_args(sp)
    sp.set_defaults(func=cmd_impute)

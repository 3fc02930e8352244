"""A sweep of bad inputs through the `stcast` CLI, as a new user would try them (docs/reliability.md).

    .venv/bin/python scripts/bad_input_sweep.py      # prints one line per case and the counts

Each case is a separate `python -m stcast.cli` process in a scratch directory; the outcome is `error`
(exit 2 with `stcast: error:` or an argparse message), `ok`, `traceback` or `other`. The target is 0
tracebacks and 0 `other`; read the `ok` lines: each must be a run that works as asked.
"""

import os
import subprocess
import sys
import tempfile

import numpy as np
import pandas as pd
import torch

from stcast.data.registry import shared_data_dir

WORK = tempfile.mkdtemp(prefix="stcast-sweep-")
D = os.path.join(WORK, "files")
OUT = os.path.join(WORK, "out")
os.makedirs(D)
os.makedirs(OUT)
los = pd.read_csv(shared_data_dir() / "los-loop" / "los_speed.csv").iloc[:600, :6]
ts = pd.date_range("2012-03-01", periods=600, freq="5min")
wide = los.copy()
wide.insert(0, "time", ts)
wide.to_csv(f"{D}/good.csv", index=False)


def w(name, text):
    with open(f"{D}/{name}", "w") as fh:
        fh.write(text)
    return f"{D}/{name}"


def frame(name, df):
    df.to_csv(f"{D}/{name}", index=False)
    return f"{D}/{name}"


cases = []
G = f"{D}/good.csv"
T = ["train", "--model", "stid", "--epochs", "1"]
# tables
cases += [
    ("empty csv", T + ["--dataset", w("empty.csv", "")]),
    ("header only", T + ["--dataset", w("hdr.csv", "time,a,b\n")]),
    ("one row", T + ["--dataset", w("one.csv", "time,a\n2012-01-01,1\n")]),
    ("binary", T + ["--dataset", w("bin.csv", "\x00\x01\x02garbage")]),
    ("text values", T + ["--dataset", frame("txt.csv", wide.assign(s="abc"))]),
    ("inf values", T + ["--dataset", frame("inf.csv", wide.assign(**{wide.columns[1]: np.inf}))]),
    ("all nan", T + ["--dataset", frame("nan.csv", wide.assign(**{c: np.nan for c in wide.columns[1:]}))]),
    ("dup ts", T + ["--dataset", frame("dup.csv", pd.concat([wide, wide.iloc[:3]]))]),
    ("bad ts", T + ["--dataset", frame("badts.csv", wide.assign(time="yesterday"))]),
    ("some NaT", T + ["--dataset", frame("nat.csv", wide.assign(time=[None] + list(wide.time[1:])))]),
    (
        "off grid",
        T
        + [
            "--dataset",
            frame("off.csv", wide.assign(time=list(wide.time[:-1]) + [wide.time.iloc[-1] + pd.Timedelta(minutes=2)])),
        ],
    ),
    (
        "irregular",
        T + ["--dataset", frame("irr.csv", wide.assign(time=pd.date_range("2012", periods=600, freq="7min")))],
    ),
    (
        "long no names",
        T + ["--dataset", frame("long.csv", wide.melt(id_vars="time", var_name="sensor", value_name="speed"))],
    ),
    ("long bad col flag", T + ["--dataset", f"{D}/long.csv", "--layout", "long", "--node-col", "nope"]),
    (
        "long text values",
        T
        + [
            "--dataset",
            frame("longtxt.csv", wide.melt(id_vars="time", var_name="node", value_name="value").assign(value="x")),
        ],
    ),
    (
        "long dup",
        T
        + [
            "--dataset",
            frame("longdup.csv", pd.concat([wide.melt(id_vars="time", var_name="node", value_name="value")] * 2)),
        ],
    ),
    ("parquet corrupt", T + ["--dataset", w("c.parquet", "PAR1xxxx")]),
    ("missing file", T + ["--dataset", f"{D}/absent.csv"]),
    ("directory", T + ["--dataset", D]),
    ("unknown name", T + ["--dataset", "metr-lax"]),
    (
        "tz mixed",
        T
        + [
            "--dataset",
            frame("tz.csv", wide.assign(time=[str(t) + ("+01:00" if i % 2 else "") for i, t in enumerate(wide.time)])),
        ],
    ),
    ("negative values", T + ["--dataset", frame("neg.csv", wide.assign(**{wide.columns[1]: -5.0}))]),
    ("huge values", T + ["--dataset", frame("huge.csv", wide.assign(**{wide.columns[1]: 1e38}))]),
    ("zero variance", T + ["--dataset", frame("const.csv", wide.assign(**{c: 1.0 for c in wide.columns[1:]}))]),
    ("too short for window", T + ["--dataset", frame("short.csv", wide.iloc[:20])]),
    ("time col flag wrong", T + ["--dataset", G, "--time-col", "when"]),
    ("step minutes wrong", T + ["--dataset", G, "--step-minutes", "7"]),
]
# adjacency
adj_cases = {
    "adj words": "a,b\nc,d\n",
    "adj wrong size": "0,1\n1,0\n",
    "adj nan": "\n".join([",".join(["nan"] * 6)] * 6),
    "adj neg": "\n".join([",".join(["-1"] * 6)] * 6),
    "adj ragged": "0,1,2\n1\n",
    "adj empty": "",
}
for k, v in adj_cases.items():
    cases.append((k, T + ["--dataset", G, "--adjacency", w(k.replace(" ", "_") + ".csv", v)]))
np.save(f"{D}/adj_obj.npy", np.array([[None, 1]], dtype=object), allow_pickle=True)
np.save(f"{D}/adj_str.npy", np.array([["a"] * 6] * 6))
np.save(f"{D}/adj_3d.npy", np.zeros((6, 6, 2)))
w("adj_trunc.npy", "\x93NUMPY\x01\x00garbage")
for n in ("adj_obj.npy", "adj_str.npy", "adj_3d.npy", "adj_trunc.npy"):
    cases.append((n, T + ["--dataset", G, "--adjacency", f"{D}/{n}"]))
cases.append(("adj missing", T + ["--dataset", G, "--adjacency", f"{D}/nope.npy"]))
# round four: graphs that name their sensors (the table's sensors are los-loop's first 6 ids)
ids = list(wide.columns[1:])
eye = np.eye(6)
pd.DataFrame(eye, index=ids[::-1], columns=ids[::-1]).to_csv(f"{D}/adj_labelled_shuffled.csv")
pd.DataFrame(eye, index=ids[:5] + ["999"], columns=ids[:5] + ["999"]).to_csv(f"{D}/adj_labelled_wrong.csv")
pd.DataFrame(eye[:5, :5], index=ids[:5], columns=ids[:5]).to_csv(f"{D}/adj_labelled_small.csv")
pd.DataFrame({"from": ids[:3], "to": ids[1:4], "cost": [100.0, 200.0, 300.0]}).to_csv(f"{D}/adj_edges.csv", index=False)
pd.DataFrame({"from": ids[:2] + ["x"], "to": ids[1:4], "cost": [1.0, 2.0, 3.0]}).to_csv(f"{D}/adj_edges_unknown.csv",
                                                                                      index=False)
w("adj_edges_nan.csv", f"from,to,cost\n{ids[0]},{ids[1]},n/a\n")
w("adj_edges_repeat.csv", f"from,to,weight\n{ids[0]},{ids[1]},1\n{ids[0]},{ids[1]},2\n")
w("adj_edges_header_only.csv", "source,target,distance\n")
np.savez(f"{D}/adj_two.npz", a=eye, b=eye)
np.savez(f"{D}/adj_named.npz", dist=eye * 3, adj_mx=eye)
w("adj_mx.pkl", "cos\nsystem\n(S'echo hi'\ntR.")  # pickled code: os.system
for n in ("adj_labelled_shuffled.csv", "adj_labelled_wrong.csv", "adj_labelled_small.csv", "adj_edges.csv",
          "adj_edges_unknown.csv", "adj_edges_nan.csv", "adj_edges_repeat.csv", "adj_edges_header_only.csv",
          "adj_two.npz", "adj_named.npz", "adj_mx.pkl"):
    cases.append((n.removesuffix(".csv"), T + ["--dataset", G, "--adjacency", f"{D}/{n}"]))
cases.append(("adj registered dataset", T + ["--dataset", "los-loop", "--adjacency", f"{D}/adj_named.npz"]))
cases.append(("adj bench registered", ["benchmark", "--models", "ha", "--datasets", "los-loop", "--adjacency",
                                       f"{D}/adj_named.npz", "--out-dir", OUT + "/adjb"]))
# flags
for flag, val in [
    ("--epochs", "-1"),
    ("--epochs", "x"),
    ("--batch-size", "0"),
    ("--lr", "-1"),
    ("--lr", "inf"),
    ("--patience", "0"),
    ("--seed", "-3"),
    ("--input-len", "0"),
    ("--horizon", "-2"),
    ("--horizon", "100000"),
    ("--input-len", "100000"),
    ("--split", "7:1:1"),
    ("--split", "a:b:c"),
    ("--split", "1:0:0"),
    ("--split", "0:0:1"),
    ("--few-shot", "0"),
    ("--few-shot", "1.5"),
    ("--max-minutes", "0"),
    ("--device", "cuda"),
    ("--device", "gpu"),
    ("--task", "classify"),
    ("--protocol", "aqi99"),
    ("--protocol", "aqi36"),
    ("--model", "stidd"),
    ("--missing", "blocks"),
]:
    args = ["train", "--model", "stid", "--epochs", "1", "--dataset", G, flag, val]
    if flag == "--model":
        args = ["train", "--dataset", G, "--epochs", "1", flag, val]
    cases.append((f"flag {flag} {val}", args))
cases.append(("threads 0", ["--threads", "0", "models"]))
cases.append(("impute task stid", ["train", "--model", "stid", "--task", "impute", "--dataset", G, "--epochs", "1"]))
cases.append(("resume no ck", T + ["--dataset", G, "--resume"]))
cases.append(("ck is dir", T + ["--dataset", G, "--checkpoint", D, "--resume"]))
cases.append(("out unwritable", T + ["--dataset", G, "--out", "/proc/nope/m.pt"]))
cases.append(("out is dir", T + ["--dataset", G, "--out", D]))
cases.append(("log unwritable", T + ["--dataset", G, "--log-csv", "/proc/x.csv"]))
# yaml / set
for name, body in [
    ("yaml list", "- a\n- b\n"),
    ("yaml bad", "train: [\n"),
    ("yaml unknown", "foo: 1\n"),
    ("yaml train unknown", "train: {epoch: 3}\n"),
    ("yaml lr str", "train: {lr: fast}\n"),
    ("yaml bs float", "train: {batch_size: 3.5}\n"),
    ("yaml train list", "train: [1, 2]\n"),
    ("yaml model_kw list", "model_kw: [1]\n"),
    ("yaml kw unknown", "model_kw: {foo: 1}\n"),
    ("yaml kw neg", "model_kw: {embed_dim: -1}\n"),
    ("yaml empty", ""),
    ("yaml device", "train: {device: tpu}\n"),
    ("yaml patience 0", "train: {patience: 0}\n"),
    ("yaml clip neg", "train: {clip_grad: -1}\n"),
    ("yaml alpha 2", "train: {alpha: 2}\n"),
    ("yaml loss", "train: {loss: mse}\n"),
]:
    cases.append((name, T + ["--dataset", G, "--config", w(name.replace(" ", "_") + ".yaml", body)]))
cases.append(("config missing", T + ["--dataset", G, "--config", f"{D}/nope.yaml"]))
for s in [
    "x",
    "=1",
    "train.=1",
    "train.lr",
    "train.lr=abc",
    "model_kw.embed_dim=abc",
    "model_kw.stid.num_layers=0",
    "train=3",
    "train.lr.x=1",
    "model_kw.stid=3",
    "train.max_batches_per_epoch=0",
    "train.eval_batch_size=-1",
    "train.weight_decay=-1",
]:
    cases.append((f"set {s}", T + ["--dataset", G, "--set", s]))
# benchmark
B = ["benchmark", "--out-dir", OUT + "", "--epochs", "1"]
for name, body in [
    ("bench unknown key", "foo: 1\n"),
    ("bench models int", "models: 3\n"),
    ("bench steps str", "steps: abc\n"),
    ("bench variants bad", "variants: {x: 1}\n"),
    ("bench unknown model", "models: [stidd]\n"),
    ("bench unknown ds", "datasets: [nope]\n"),
    ("bench train unknown", "train: {epoch: 1}\n"),
    ("bench few_shot 2", "few_shot: 2\n"),
    ("bench input_len 0", "input_len: 0\n"),
    ("bench model_train bad", "model_train: {stid: 3}\n"),
    ("bench cluster bad", "cluster: {kk: 3}\n"),
    ("bench split bad", "split: '1:1:1'\n"),
]:
    cases.append((name, B + ["--config", w(name.replace(" ", "_") + ".yaml", body)]))
cases.append(("bench models flag unknown", B + ["--models", "stid,nope"]))
# model files
torch.save({"format": "x"}, f"{D}/m_fmt.pt")
w("m_garbage.pt", "garbage")
torch.save([1, 2], f"{D}/m_list.pt")
for n in ("m_fmt.pt", "m_garbage.pt", "m_list.pt"):
    cases.append((f"evaluate {n}", ["evaluate", "--model-file", f"{D}/{n}"]))
    cases.append((f"forecast {n}", ["forecast", "--model-file", f"{D}/{n}", "--out", OUT + "/f.csv"]))
cases.append(("evaluate missing", ["evaluate", "--model-file", f"{D}/nope.pt"]))
cases.append(("forecast xlsx", ["forecast", "--model-file", f"{D}/m_fmt.pt", "--out", OUT + "/f.xlsx"]))
cases.append(("impute window 0", ["impute", "--dataset", G, "--window", "0", "--out", OUT + "/i.csv"]))
cases.append(("impute window huge", ["impute", "--dataset", G, "--window", "99999", "--out", OUT + "/i.csv"]))
cases.append(("impute method unknown", ["impute", "--dataset", G, "--method", "magic", "--out", OUT + "/i.csv"]))
cases.append(("impute stid method", ["impute", "--dataset", G, "--method", "stid", "--out", OUT + "/i.csv"]))
cases.append(("impute out dir", ["impute", "--dataset", G, "--out", OUT + ""]))
# LLM-TS Net's descriptions and settings
cases.append(("describe node out of range", ["describe", "--dataset", G, "--node", "999", "--writer", "template"]))
cases.append(("describe start past end", ["describe", "--dataset", G, "--start", "99999", "--writer", "template"]))
cases.append(("describe no dataset", ["describe"]))
cases.append(("describe writer missing dir", ["describe", "--dataset", G, "--writer", f"{D}/no_lm_here"]))
cases.append(("describe non-llm model file", ["describe", "--model-file", f"{D}/m_fmt.pt"]))
for s in ["model_kw.llm-ts-net.kv_groups=3", "model_kw.llm-ts-net.text_scope=corpus",
          "model_kw.llm-ts-net.writer=nope", "model_kw.llm-ts-net.top_k=99", "model_kw.llm-ts-net.patch_len=5"]:
    cases.append((f"llm-ts-net {s.split('.')[-1]}", ["train", "--model", "llm-ts-net", "--dataset", G, "--epochs", "1",
                                                     "--set", s]))
cases.append(("datasets describe unknown", ["datasets", "describe", "nope"]))
cases.append(("datasets download shared", ["datasets", "download", "aqi36"]))
cases.append(("datasets no name", ["datasets", "describe"]))
cases.append(
    ("pretrain bad variant", ["pretrain", "factost", "--variant", "huge", "--steps", "1", "--out", OUT + "/p.pt"])
)
cases.append(
    ("pretrain resume missing", ["pretrain", "factost", "--steps", "1", "--resume", "--out", OUT + "/none.pt"])
)
# round two: time grids, config values all the way down, outputs first, messages, operators' loop, reports
fast = wide.assign(time=pd.date_range("2012-03-01", periods=600, freq="30s"))
steps = wide.assign(time=range(600))
cases += [
    ("30-second table", T + ["--dataset", frame("fast.csv", fast)]),
    ("integer time no step", T + ["--dataset", frame("steps.csv", steps)]),
    ("integer time with step", T + ["--dataset", f"{D}/steps.csv", "--step-minutes", "5"]),
    ("yaml key twice", T + ["--dataset", G, "--config", w("twice.yaml", "train:\n  lr: 0.1\ntrain:\n  lr: 0.2\n")]),
    ("yaml 2 MB", T + ["--dataset", G, "--config", w("big.yaml", "name: x\n" + "# pad\n" * 400_000)]),
    ("cut_epoch no budget", T + ["--dataset", G, "--set", "train.cut_epoch=true"]),
    ("bench table step five", ["benchmark", "--config", w("tab.yaml", f"datasets: [{G}]\nmodels: [ha]\n"
                                                          f"tables:\n  {G}: {{step_minutes: five}}\n")]),
    ("bench table list opts", ["benchmark", "--config", w("tabl.yaml", f"datasets: [{G}]\nmodels: [ha]\n"
                                                          f"tables:\n  {G}: [layout, long]\n")]),
    ("bench table other path", ["benchmark", "--config", w("tabo.yaml", f"datasets: [{G}]\nmodels: [ha]\n"
                                                           "tables:\n  other.csv: {layout: long}\n")]),
    ("bench null zero", ["benchmark", "--config", w("tabz.yaml", f"datasets: [{G}]\nmodels: [ha]\n"
                                                    f"tables:\n  {G}: {{null_value: zero}}\n")]),
    ("variant few_shot ten", ["benchmark", "--config", w("var.yaml", "datasets: [los-loop]\nmodels: [ha, s10]\n"
                                                          "variants:\n  s10: {model: stid, few_shot: ten}\n")]),
    ("resume no state", ["benchmark", "--models", "ha", "--datasets", G, "--resume", "--out-dir", OUT + "/fresh"]),
    ("device abbreviation", T + ["--dataset", G, "--device", "cuda"]),
    ("plot bad suffix", ["plot", "correlation", "--dataset", G, "--out", OUT + "/c.xyz"]),
    ("plot forecast no model", ["plot", "forecast", "--dataset", G]),
    ("plot results missing", ["plot", "results", OUT + "/none.csv"]),
    ("report bad csv", ["report", w("bad_results.csv", "a,b\n1,2\n"), "--out", OUT + "/r.md"]),
    ("report not md", ["report", w("ok_results.csv", "dataset,model,mae\nx,stid,1\n"), "--out", OUT + "/r.txt"]),
    ("merge missing", ["merge", OUT + "/nope.csv", "--out", OUT + "/m.csv"]),
    ("pretrain out dir", ["pretrain", "factost", "--steps", "1", "--out", OUT]),
    ("init-from missing", ["train", "--init-from", OUT + "/none.pt", "--dataset", G]),
    ("train no model", ["train", "--dataset", G]),
    ("num-nodes no launcher", T + ["--dataset", G, "--num-nodes", "2"]),
]
# round five: nothing a user hands us is lost (outputs onto inputs, reruns without --resume, two writers)
np.save(f"{D}/zero_graph.npy", np.zeros((6, 6)))
M5 = OUT + "/m5.pt"
cases += [
    ("keep: out onto table", T + ["--dataset", G, "--out", G]),
    ("keep: out via dotdot", T + ["--dataset", G, "--out", f"{D}/new/../good.csv"]),
    ("keep: impute onto table", ["impute", "--dataset", G, "--out", G]),
    ("keep: out onto graph", T + ["--dataset", G, "--adjacency", f"{D}/zero_graph.npy", "--out",
                                  f"{D}/zero_graph.npy"]),
    ("keep: out is checkpoint", T + ["--dataset", G, "--out", M5, "--checkpoint", M5]),
    ("keep: graph without edges", ["train", "--model", "gwnet", "--epochs", "1", "--dataset", G, "--adjacency",
                                   f"{D}/zero_graph.npy"]),
    ("keep: bench first run", ["benchmark", "--models", "ha", "--datasets", G, "--out-dir", OUT + "/b5"]),
    ("keep: bench rerun", ["benchmark", "--models", "ha", "--datasets", G, "--out-dir", OUT + "/b5"]),
    ("keep: bench resume+overwrite", ["benchmark", "--models", "ha", "--datasets", G, "--out-dir", OUT + "/b5",
                                      "--resume", "--overwrite"]),
    ("keep: ck first run", T + ["--dataset", G, "--checkpoint", OUT + "/ck5.pt"]),
    ("keep: ck rerun", T + ["--dataset", G, "--checkpoint", OUT + "/ck5.pt"]),
    ("keep: pretrain onto file", ["pretrain", "factost", "--steps", "1", "--out", G]),
]
if len(sys.argv) > 1:  # only the cases whose name contains this text (e.g. `describe`)
    cases = [c for c in cases if sys.argv[1] in c[0]]
print(len(cases), "cases", file=sys.stderr)
res = {"ok": [], "error": [], "traceback": [], "other": []}
for name, args in cases:
    threads = [] if args[0] == "--threads" else ["--threads", "1"]
    p = subprocess.run(
        [sys.executable, "-m", "stcast.cli", *threads, *args], capture_output=True, text=True, timeout=300, cwd=WORK
    )
    err = p.stderr
    if "Traceback" in err:
        kind = "traceback"
    elif p.returncode == 0:
        kind = "ok"
    elif p.returncode == 2 and ("stcast: error:" in err or "error: argument" in err or "invalid choice" in err):
        kind = "error"
    else:
        kind = "other"
    last = [l for l in err.strip().splitlines() if l.strip()][-1:] if err.strip() else [""]
    warn = [l for l in err.splitlines() if "warning" in l][:2]
    res[kind].append(name)
    print(
        f"{kind:9} {name:28} rc={p.returncode} | {last[0][:150]} {'| ' + ' / '.join(warn)[:150] if kind == 'ok' and warn else ''}"
    )
print({k: len(v) for k, v in res.items()})
print("tracebacks:", res["traceback"], "other:", res["other"])

"""RMSNorm against layer norm on transformer shapes: normlib's two, and PyTorch's two kernels.

    python benchmarks/rmsnorm_bench.py     # about a minute; writes benchmarks/results/rmsnorm.json

The RMSNorm chapter (claim RMS-3) reads the JSON file; the notebook never times anything itself,
because a timing is not a number every machine prints. Shapes are ``(batch, tokens, d_model)``:
the chapter's own small model and two GPT-sized ones. Both layers have a learned gain; layer norm
also its bias, as in the models that use it. Timing as in ``bench.py`` (whose helpers this reuses):
one thread, process CPU time, interleaved rounds, the fastest round counts; forward and
forward+backward of a training step.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from bench import machine, measure_interleaved  # noqa: E402

import normlib.functional as NF  # noqa: E402

SHAPES = ((8, 64, 64), (8, 512, 768), (4, 1024, 1024))  # the chapter's model; GPT-2-small-like widths


def cases(d: int) -> dict:
    """{name: (function of (x, weight, bias), uses bias)} for the four layers timed."""
    out = {
        "torch layer_norm": lambda x, w, b: F.layer_norm(x, (d,), w, b, 1e-5),
        "torch rms_norm": lambda x, w, b: F.rms_norm(x, (d,), w, 1e-5),
        "normlib layer_norm": lambda x, w, b: NF.layer_norm(x, (d,), w, b, 1e-5),
    }
    if hasattr(NF, "rms_norm"):
        out["normlib rms_norm"] = lambda x, w, b: NF.rms_norm(x, (d,), w, 1e-5)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--min-run-time", type=float, default=0.2)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "rmsnorm.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    rows = []
    for shape in SHAPES:
        d = shape[-1]
        x = torch.randn(shape).requires_grad_()
        grad = torch.randn(shape)
        params = [(torch.rand(d) + 0.5).requires_grad_(), torch.randn(d).requires_grad_()]
        row = {"shape": list(shape)}
        row.update(measure_interleaved(cases(d), x, params, grad, args.min_run_time, "cpu", args.rounds))
        rows.append(row)
        print(row, flush=True)
    result = {"machine": machine(), "clock": "cpu", "rounds": args.rounds, "min_run_time": args.min_run_time,
              "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"results written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

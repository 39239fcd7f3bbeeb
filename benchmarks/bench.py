"""Time normlib against PyTorch's native kernels: BN, LN, IN, GN and LRN, forward and forward+backward.

    python benchmarks/bench.py            # full shapes, eager and torch.compile (several minutes)
    python benchmarks/bench.py --quick    # small shapes, eager only (under a minute)
    make bench                            # the full run, without the Makefile's deterministic env

"forward" is the forward pass of a training step (inputs require grad, so both sides record
what their backward needs); "forward+backward" adds the backward with a fixed upstream gradient.
Besides normlib and PyTorch, the full run times normlib's formula op for op with autograd's
backward (no closed form), eagerly and under ``torch.compile``, and normlib itself compiled.
Each timing is the median of ``torch.utils.benchmark.Timer.blocked_autorange``, the fastest of
several rounds in which all variants take turns (``--rounds``), by default on
one thread and in process CPU time (``--clock cpu``), which other jobs on a shared machine
disturb much less than elapsed time (with 2 threads and busy cores, a parallel kernel waits for
its slowest thread and wall-clock medians swing by 100x).

Run it *without* ``ATEN_CPU_CAPABILITY=default`` (which the Makefile exports for reproducible
notebook outputs): that setting switches off the vectorized CPU kernels, which slows PyTorch's
native kernels far more than normlib's composition of ops, and no one trains that way. The
script records the setting it ran under, and the machine, in its JSON file.

glibc's allocator returns large freed buffers to the system and page-faults them back in on
the next allocation; a composition of many ops allocates more such buffers than a fused kernel,
so it pays more. ``MALLOC_MMAP_THRESHOLD_=268435456 MALLOC_TRIM_THRESHOLD_=1073741824`` (or
jemalloc/tcmalloc, as PyTorch's CPU tuning guide advises) keeps them; the result file records it.

Among the lines printed is ``geomean normlib/torch forward+backward (BN, LN, IN, GN): X.XXx``
(eager); local response norm, whose PyTorch implementation is itself a slow composite of ops,
is reported apart so that it does not flatter the headline.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch
import torch._inductor.config as inductor_config
import torch.nn.functional as F
from torch.utils import benchmark

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import normlib.functional as NF  # noqa: E402
from normlib.book.perf import cpu_name, geomean  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
STANDARDIZED = ("BN", "LN", "IN", "GN")  # the layers built on normlib.core's statistics: the headline

# name: (input shape, full) and (input shape, --quick); ResNet-style activations scaled down
# from 32x64x56x56 to a batch of 8 for two cores, a transformer's (batch, tokens, d_model).
SHAPES = {
    "BN": ((8, 64, 56, 56), (4, 32, 28, 28)),
    "LN": ((8, 512, 768), (4, 128, 768)),
    "IN": ((8, 64, 56, 56), (4, 32, 28, 28)),
    "GN": ((8, 64, 56, 56), (4, 32, 28, 28)),
    "LRN": ((8, 96, 27, 27), (4, 96, 27, 27)),  # AlexNet's first LRN layer: 96 channels, 27x27 after pooling
}


def make_case(name: str, shape: tuple[int, ...]):
    """(normlib function, torch function, parameters) of one layer; both called as f(x, *params)."""
    c = shape[-1] if name == "LN" else shape[1]
    weight = torch.rand(c) + 0.5
    bias = torch.randn(c)
    params = [weight.requires_grad_(), bias.requires_grad_()]
    if name == "BN":
        return (lambda x, w, b: NF.batch_norm(x, None, None, w, b, training=True),
                lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True), params)
    if name == "LN":
        return (lambda x, w, b: NF.layer_norm(x, (c,), w, b), lambda x, w, b: F.layer_norm(x, (c,), w, b), params)
    if name == "IN":
        return (lambda x, w, b: NF.instance_norm(x, weight=w, bias=b),
                lambda x, w, b: F.instance_norm(x, weight=w, bias=b), params)
    if name == "GN":
        return (lambda x, w, b: NF.group_norm(x, 32, w, b), lambda x, w, b: F.group_norm(x, 32, w, b), params)
    if name == "LRN":
        return (lambda x: NF.local_response_norm(x, 5, 1e-4, 0.75, 2.0),
                lambda x: F.local_response_norm(x, 5, 1e-4, 0.75, 2.0), [])
    raise ValueError(name)


def autograd_formula(name: str, shape: tuple[int, ...]):
    """The same layer as normlib's formula, op for op (:func:`normlib.core.formula`), but
    differentiated by autograd through every intermediate: normlib without its closed-form backward."""
    from normlib.core import formula, group_view, per_channel, reduce_dims, sample_view

    if name in ("BN", "IN"):
        dims = reduce_dims({"BN": "batch", "IN": "instance"}[name], len(shape))
        return lambda x, w, b: formula(x, dims, 1e-5, per_channel(w, x.dim()), per_channel(b, x.dim()))[0]
    if name == "GN":
        return lambda x, w, b: formula(group_view(x, 32), reduce_dims("group", 4), 1e-5, w.reshape(1, 32, -1, 1),
                                       b.reshape(1, 32, -1, 1))[0].reshape(x.shape)
    if name == "LN":
        return lambda x, w, b: formula(sample_view(x, 1), reduce_dims("layer", 2), 1e-5, w, b)[0].reshape(x.shape)
    return None  # LRN has no statistics: nothing changed


def forward(fn, x, params):
    return fn(x, *params)


def forward_backward(fn, x, params, grad):
    y = fn(x, *params)
    y.backward(grad)
    x.grad = None
    for p in params:
        p.grad = None


CLOCKS = {"cpu": time.process_time, "wall": time.perf_counter}


def measure(fn, x, params, grad, min_run_time: float, clock: str) -> dict[str, float]:
    """Median seconds of forward and of forward+backward, one ``blocked_autorange`` each."""
    out = {}
    for label, stmt in (("forward", "forward(fn, x, params)"), ("forward+backward", "forward_backward(fn, x, params, grad)")):
        timer = benchmark.Timer(
            stmt=stmt,
            globals={"forward": forward, "forward_backward": forward_backward, "fn": fn, "x": x, "params": params, "grad": grad},
            num_threads=torch.get_num_threads(),
            timer=CLOCKS[clock],
        )
        out[label] = timer.blocked_autorange(min_run_time=min_run_time).median
    return out


def measure_interleaved(functions: dict, x, params, grad, min_run_time: float, clock: str, rounds: int) -> dict:
    """Every variant measured once per round, round after round; the fastest round counts.

    Other jobs on a shared machine only ever slow a measurement down, and interleaving exposes
    every variant to the same moments of load, so the minimum over rounds is the steadiest
    estimate of each variant's own cost.
    """
    best: dict[str, dict[str, float]] = {}
    for _ in range(rounds):
        for name, fn in functions.items():
            for mode, seconds in measure(fn, x, params, grad, min_run_time, clock).items():
                best.setdefault(name, {})[mode] = min(seconds, best.get(name, {}).get(mode, float("inf")))
    return best


def machine() -> dict[str, object]:
    return {
        "cpu": cpu_name(),
        "logical cores": os.cpu_count(),
        "torch threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpu capability": torch.backends.cpu.get_cpu_capability(),
        "ATEN_CPU_CAPABILITY": os.environ.get("ATEN_CPU_CAPABILITY", "(unset)"),
        "MALLOC_MMAP_THRESHOLD_": os.environ.get("MALLOC_MMAP_THRESHOLD_", "(unset: glibc default)"),
        "inductor caches": "disabled (compiled afresh)" if inductor_config.force_disable_caches else "enabled",
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        # Other jobs on the same cores (a shared machine) show here; CPU time is what is measured.
        "load average (1, 5, 15 min) at start": [round(v, 1) for v in os.getloadavg()],
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small shapes, no torch.compile, under a minute")
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                        help="also time normlib under torch.compile (default: on, off with --quick)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1: steadier on a shared machine)")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="cpu",
                        help="cpu: the process's CPU time (default; steady when other jobs share the cores, "
                             "meaningful with 1 thread); wall: elapsed time")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds, fastest counts (default 5, 2 with --quick)")
    parser.add_argument("--min-run-time", type=float, default=None, help="seconds per measurement")
    parser.add_argument("--out", type=Path, default=None, help="JSON file (default benchmarks/results/<full|quick>.json)")
    args = parser.parse_args(argv)
    use_compile = (not args.quick) if args.compile is None else args.compile
    min_run_time = args.min_run_time or (0.1 if args.quick else 0.25)
    args.rounds = args.rounds or (2 if args.quick else 5)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if use_compile:
        # Compile afresh, for this process's CPU: Inductor's on-disk cache (shared by every process
        # of the user) is not keyed on ATEN_CPU_CAPABILITY, so a graph first compiled under the
        # Makefile's `default` setting (scalar C++ loops) would be reused here unvectorized.
        inductor_config.force_disable_caches = True
    if os.environ.get("ATEN_CPU_CAPABILITY"):
        print(f"note: ATEN_CPU_CAPABILITY={os.environ['ATEN_CPU_CAPABILITY']} slows the native kernels; "
              "`make bench` runs without it", file=sys.stderr)

    rows = []
    for name, (full, quick) in SHAPES.items():
        shape = quick if args.quick else full
        ours, theirs, params = make_case(name, shape)
        x = torch.randn(shape).requires_grad_()
        grad = torch.randn(shape)
        row = {"layer": name, "shape": list(shape)}
        functions = {"normlib": ours, "torch": theirs}
        plain = autograd_formula(name, shape)
        if plain is not None and not args.quick:
            functions["normlib, autograd backward"] = plain
        if use_compile:
            compiled = torch.compile(ours)
            start = time.perf_counter()
            forward_backward(compiled, x, params, grad)  # compiles forward and backward graphs
            row["compile seconds"] = time.perf_counter() - start
            functions["normlib compiled"] = compiled
            if plain is not None and not args.quick:  # the compiler given the formula and autograd's backward of it
                functions["normlib compiled, autograd backward"] = torch.compile(plain)
                forward_backward(functions["normlib compiled, autograd backward"], x, params, grad)
        row.update(measure_interleaved(functions, x, params, grad, min_run_time, args.clock, args.rounds))
        rows.append(row)
        print(_format_row(row), flush=True)

    # The headline is over the four layers built on the statistics of normlib.core; LRN, whose
    # PyTorch implementation is a slow composite of pooling ops, is reported on its own.
    summary = {}
    four = [r for r in rows if r["layer"] in STANDARDIZED]
    for variant in ("normlib", "normlib, autograd backward", "normlib compiled", "normlib compiled, autograd backward"):
        if all(variant in r for r in four):
            for mode in ("forward", "forward+backward"):
                summary[f"{variant}/torch {mode} (BN, LN, IN, GN)"] = geomean(
                    r[variant][mode] / r["torch"][mode] for r in four)
    for r in rows:
        if r["layer"] not in STANDARDIZED:
            for variant in ("normlib", "normlib compiled"):
                if variant in r:
                    summary[f"{variant}/torch forward+backward ({r['layer']})"] = r[variant]["forward+backward"] / r["torch"]["forward+backward"]
    result = {"machine": machine(), "clock": args.clock, "quick": args.quick, "min_run_time": min_run_time, "rounds": args.rounds, "rows": rows, "geomean": summary}
    out = args.out or RESULTS / ("quick.json" if args.quick else "full.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"machine: {result['machine']['cpu']}, {result['machine']['torch threads']} threads, torch {torch.__version__}")
    for key, value in summary.items():
        print(f"{'geomean ' if '(BN, LN, IN, GN)' in key else ''}{key}: {value:.2f}x")
    print(f"results written to {out}")
    if args.quick:
        print("(--quick: small shapes, where per-call overheads weigh more than in the full run's "
              "shapes, so these ratios come out higher than the full run's; eager only)")
    return 0


def _format_row(row) -> str:
    def ms(seconds):
        return f"{seconds * 1e3:8.2f}"
    shape = "x".join(map(str, row["shape"]))
    text = f"{row['layer']:4s} {shape:15s}"
    for variant in ("normlib", "torch", "normlib, autograd backward", "normlib compiled", "normlib compiled, autograd backward"):
        if variant in row:
            text += f" | {variant} fwd {ms(row[variant]['forward'])} f+b {ms(row[variant]['forward+backward'])} ms"
    ratio = row["normlib"]["forward+backward"] / row["torch"]["forward+backward"]
    return text + f" | eager/torch f+b {ratio:.2f}x"


if __name__ == "__main__":
    sys.exit(main())

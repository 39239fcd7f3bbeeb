"""normlib against torch.nn 2.13 on PyTorch's own test inputs.

PyTorch tests its operators with the OpInfo entries of ``common_methods_invocations.op_db`` (sample,
reference and error inputs) and its modules with the ModuleInfo entries of ``common_modules.module_db``.
Every CPU input of every entry that normlib mirrors runs here through torch and through normlib:
outputs, the running buffers that the call updates in place, the gradients of the input and of the
parameters, and the error behaviour (torch raises exactly when normlib raises) must agree. Nothing
that normlib mirrors is skipped; a last test checks that the lists below cover every such entry.
"""
import copy
import inspect
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch.testing._internal.common_methods_invocations import op_db
from torch.testing._internal.common_modules import module_db

import normlib.functional as NF
import normlib.nn as nnn

FUNCTIONS = {  # OpInfo name: normlib's function
    "nn.functional.batch_norm": NF.batch_norm,
    "nn.functional.layer_norm": NF.layer_norm,
    "nn.functional.instance_norm": NF.instance_norm,
    "nn.functional.group_norm": NF.group_norm,
    "nn.functional.local_response_norm": NF.local_response_norm,
    "nn.functional.rms_norm": NF.rms_norm,
}
MODULES = {  # ModuleInfo name: normlib's module
    f"nn.{name}": getattr(nnn, name)
    for name in ("BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "InstanceNorm1d", "InstanceNorm2d",
                 "InstanceNorm3d", "GroupNorm", "LayerNorm", "RMSNorm", "LocalResponseNorm")
}
@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """The inputs are tiny: one thread, so that a busy machine's thread pool does not dominate."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


OPS = [op for op in op_db if op.name in FUNCTIONS]
MODULE_INFOS = [m for m in module_db if m.name in MODULES]

# Two implementations of the same float32-accumulated formula agree to a few roundings of the
# output's dtype; gradients, a longer computation, get a little more room. In float16/bfloat16 the
# last rounding of y = weight * x_hat + bias is relative to the larger terms, so the absolute
# tolerance scales with the largest value compared.
TOLERANCE = {
    torch.float64: 1e-10, torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 2e-2,
    torch.complex128: 1e-10, torch.complex64: 1e-5,
}


def _close(ours, theirs, what, dtype, scale=1.0):
    tol = TOLERANCE.get(dtype, 1e-5) * scale
    atol = tol
    if dtype in (torch.float16, torch.bfloat16) and theirs.numel():
        atol = tol * max(1.0, theirs.detach().float().nan_to_num(0, 0, 0).abs().max().item())
    torch.testing.assert_close(ours, theirs, rtol=tol, atol=atol, equal_nan=True, msg=lambda m: f"{what}: {m}")


def _clone(value):
    """A deep copy of a sample's argument; tensors that require grad become fresh leaves."""
    if isinstance(value, torch.Tensor):
        return value.detach().clone().requires_grad_(value.requires_grad)
    if isinstance(value, (list, tuple)):
        return type(value)(_clone(v) for v in value)
    if isinstance(value, dict):
        return {k: _clone(v) for k, v in value.items()}
    return copy.deepcopy(value)


def _tensors(value):
    """Every tensor of a (nested) argument, in order."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _tensors(v)]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _tensors(v)]
    return []


def _run(f, args, kwargs):
    """``(output, None)`` or ``(None, exception)``; warnings (torch's own) are not failures here."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return f(*args, **kwargs), None
    except Exception as error:  # noqa: BLE001 - which exception is compared by the caller
        return None, error


def _compare_calls(torch_f, ours_f, args, kwargs, dtype, label):
    """Run both on copies of the same arguments; compare outputs, in-place buffers and gradients."""
    theirs_args, theirs_kwargs = _clone(args), _clone(kwargs)
    ours_args, ours_kwargs = _clone(args), _clone(kwargs)
    theirs, theirs_error = _run(torch_f, theirs_args, theirs_kwargs)
    ours, ours_error = _run(ours_f, ours_args, ours_kwargs)
    assert (theirs_error is None) == (ours_error is None), (
        f"{label}: torch {'raised ' + repr(theirs_error) if theirs_error else 'returned'}, "
        f"normlib {'raised ' + repr(ours_error) if ours_error else 'returned'}")
    if theirs_error is not None:
        return
    assert ours.shape == theirs.shape and ours.dtype == theirs.dtype, (label, ours.shape, theirs.shape, ours.dtype, theirs.dtype)
    _close(ours, theirs, f"{label} output", dtype)
    theirs_tensors = _tensors((theirs_args, theirs_kwargs))
    ours_tensors = _tensors((ours_args, ours_kwargs))
    for i, (a, b) in enumerate(zip(ours_tensors, theirs_tensors)):  # running statistics, updated in place
        _close(a.detach(), b.detach(), f"{label} argument {i} after the call", dtype)
    leaves = [i for i, t in enumerate(theirs_tensors) if t.requires_grad]
    if not leaves or not theirs.requires_grad or not theirs.dtype.is_floating_point and not theirs.is_complex():
        return
    grad_output = torch.randn(theirs.shape, dtype=theirs.dtype)
    theirs_grads = torch.autograd.grad(theirs, [theirs_tensors[i] for i in leaves], grad_output, allow_unused=True)
    ours_grads = torch.autograd.grad(ours, [ours_tensors[i] for i in leaves], grad_output, allow_unused=True)
    for i, a, b in zip(leaves, ours_grads, theirs_grads):
        if b is None:
            assert a is None or not a.any(), f"{label}: gradient of argument {i} is {a}, torch has none"
        else:
            _close(a, b, f"{label} gradient of argument {i}", dtype, scale=4.0)


# ---------------------------------------------------------------------------------------------
# OpInfo: sample, reference and error inputs of the functions


def _op_cases():
    cases = []
    for op in OPS:
        for dtype in sorted(op.supported_dtypes("cpu"), key=str):
            requires_grad = dtype.is_floating_point or dtype.is_complex
            for kind in ("sample", "reference"):
                cases.append(pytest.param(op, dtype, kind, requires_grad,
                                          id=f"{op.name.split('.')[-1]}{'-' + op.variant_test_name if op.variant_test_name else ''}-{kind}-{str(dtype)[6:]}"))
    return cases


@pytest.mark.parametrize("op,dtype,kind,requires_grad", _op_cases())
def test_every_opinfo_input_gives_torchs_output_buffers_gradients_and_errors(op, dtype, kind, requires_grad):
    torch.manual_seed(0)
    make = op.sample_inputs if kind == "sample" else op.reference_inputs
    samples = list(make("cpu", dtype, requires_grad=requires_grad))
    assert samples or kind == "reference", f"{op.name} has no sample inputs"
    ours_f = FUNCTIONS[op.name]
    for i, sample in enumerate(samples):
        _compare_calls(op.op, ours_f, (sample.input, *sample.args), sample.kwargs, dtype, f"{op.name} {kind} {i}")


@pytest.mark.parametrize("op", [op for op in OPS if op.error_inputs_func is not None], ids=lambda op: op.name)
def test_every_opinfo_error_input_raises_in_normlib_too(op):
    errors = list(op.error_inputs("cpu"))
    assert errors
    for error in errors:
        sample = error.sample_input
        with pytest.raises(error.error_type, match=error.error_regex):
            op.op(sample.input, *sample.args, **sample.kwargs)
        with pytest.raises((ValueError, RuntimeError, TypeError)):
            FUNCTIONS[op.name](sample.input, *sample.args, **sample.kwargs)


# ---------------------------------------------------------------------------------------------
# ModuleInfo: every module input, in training and evaluation, and the error inputs


def _module_cases():
    cases = []
    for info in MODULE_INFOS:
        for dtype in sorted(info.supported_dtypes("cpu"), key=str):
            for training in (True, False) if info.train_and_eval_differ else (True,):
                cases.append(pytest.param(info, dtype, training, id=f"{info.name[3:]}-{str(dtype)[6:]}-{'train' if training else 'eval'}"))
    return cases


@pytest.mark.parametrize("info,dtype,training", _module_cases())
def test_every_moduleinfo_input_gives_torchs_outputs_state_and_gradients(info, dtype, training):
    torch.manual_seed(0)
    inputs = info.module_inputs_func(info, device="cpu", dtype=dtype, requires_grad=True, training=training)
    assert inputs
    for i, module_input in enumerate(inputs):
        label = f"{info.name} input {i} ({module_input.desc})"
        c = module_input.constructor_input
        theirs_module, theirs_error = _run(info.module_cls, c.args, {**c.kwargs, "dtype": dtype})
        ours_module, ours_error = _run(MODULES[info.name], c.args, {**c.kwargs, "dtype": dtype})
        assert (theirs_error is None) == (ours_error is None), (label, theirs_error, ours_error)
        if theirs_error is not None:
            continue
        with torch.no_grad():  # parameters away from their ones/zeros initialization, the same in both
            for p in theirs_module.parameters():
                p.uniform_(0.5, 1.5)
        ours_module.load_state_dict(theirs_module.state_dict())
        assert sorted(ours_module.state_dict()) == sorted(theirs_module.state_dict()), label
        assert repr(ours_module) == repr(theirs_module), label
        theirs_module.train(training), ours_module.train(training)
        for step in range(2):  # two steps: running averages (momentum=None: the cumulative one)
            f = module_input.forward_input
            leaves_theirs = _clone(f.args)
            leaves_ours = _clone(f.args)
            theirs, theirs_error = _run(theirs_module, leaves_theirs, _clone(f.kwargs))
            ours, ours_error = _run(ours_module, leaves_ours, _clone(f.kwargs))
            assert (theirs_error is None) == (ours_error is None), (label, theirs_error, ours_error)
            if theirs_error is not None:
                break
            _close(ours, theirs, f"{label} step {step} output", dtype)
            for key, value in theirs_module.state_dict().items():
                mine = ours_module.state_dict()[key]
                if value.is_floating_point():
                    _close(mine, value, f"{label} step {step} {key}", dtype)
                else:
                    assert torch.equal(mine, value), (label, step, key, mine, value)
            grad_output = torch.randn(theirs.shape, dtype=theirs.dtype)
            inputs_theirs = [t for t in _tensors(leaves_theirs) if t.requires_grad]
            inputs_ours = [t for t in _tensors(leaves_ours) if t.requires_grad]
            theirs_grads = torch.autograd.grad(theirs, inputs_theirs + list(theirs_module.parameters()), grad_output)
            ours_grads = torch.autograd.grad(ours, inputs_ours + list(ours_module.parameters()), grad_output)
            for j, (a, b) in enumerate(zip(ours_grads, theirs_grads)):
                _close(a, b, f"{label} step {step} gradient {j}", dtype, scale=4.0)


@pytest.mark.parametrize("info", [m for m in MODULE_INFOS if m.module_error_inputs_func is not None], ids=lambda m: m.name)
@pytest.mark.parametrize("training", [True, False])
def test_every_moduleinfo_error_input_raises_in_normlib_where_torch_raises(info, training):
    errors = info.module_error_inputs_func(info, device="cpu", dtype=torch.float32, requires_grad=False, training=training)
    assert errors
    for error in errors:
        c, f = error.module_error_input.constructor_input, error.module_error_input.forward_input
        outcomes = []
        for cls in (info.module_cls, MODULES[info.name]):
            module, failure = _run(cls, c.args, c.kwargs)
            stage = "construction"
            if failure is None:
                module.train(training)
                _, failure = _run(module, f.args, f.kwargs)
                stage = "forward"
            outcomes.append((stage, failure is not None, type(failure).__name__))
        assert outcomes[0][:2] == outcomes[1][:2], (info.name, error.error_regex, outcomes)


# ---------------------------------------------------------------------------------------------
# Coverage and signatures


def test_the_lists_cover_every_entry_of_a_mirrored_name():
    mirrored_functions = {f"nn.functional.{name}" for name in NF.__all__}
    assert {op.name for op in op_db if op.name in mirrored_functions} == set(FUNCTIONS)
    mirrored_modules = {f"nn.{name}" for name in nnn.__all__}
    assert {m.name for m in module_db if m.name in mirrored_modules} == set(MODULES)


SIGNATURE_PAIRS = [(getattr(NF, name), getattr(F, name)) for name in FUNCTIONS.keys() for name in [name.split(".")[-1]]]
SIGNATURE_PAIRS += [(getattr(nnn, name), getattr(torch.nn, name)) for name in
                    [m.split(".")[-1] for m in MODULES] + ["SyncBatchNorm"]]
SIGNATURE_PAIRS += [(nnn.weight_norm, torch.nn.utils.parametrizations.weight_norm)]


@pytest.mark.parametrize("ours,theirs", SIGNATURE_PAIRS, ids=lambda f: f.__name__)
def test_signature_is_torchs_names_kinds_and_defaults(ours, theirs):
    def shape(f):
        return [(p.name, p.kind, p.default) for p in inspect.signature(f).parameters.values()]

    assert shape(ours) == shape(theirs)

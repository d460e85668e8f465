"""The CUDA path: cuDNN kernels equal the textbook equations, training runs on the GPU.

Skipped without a GPU; ``benchmarks/gpu.sh`` runs this file first on a machine with one.
Matmuls run in float32 here (TF32 off), so the tolerances are float32's.
"""

from __future__ import annotations

import pytest
import torch

from elman.data.batching import BPTTStream
from elman.models.rnnlm import RNNLM, RNNLMConfig
from elman.nn import Recurrent
from elman.train.trainer import TrainConfig, Trainer

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
CUDA = torch.device("cuda")


@pytest.fixture(autouse=True)
def _no_tf32():
    matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, cudnn


@pytest.mark.parametrize("cell", ["elman", "gru", "lstm"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_cudnn_equals_the_unrolled_equations(cell: str, bidirectional: bool) -> None:
    torch.manual_seed(0)
    kw: dict = {"num_layers": 2, "bidirectional": bidirectional}
    if cell == "gru":  # torch's kernel is the cuDNN variant (reset gate after U h)
        kw["variant"] = "cudnn"
    fused = Recurrent(cell, 8, 16, impl="fused", **kw).to(CUDA)
    unrolled = Recurrent(cell, 8, 16, impl="unrolled", **kw).to(CUDA)
    unrolled.load_state_dict(fused.state_dict())
    x = torch.randn(7, 3, 8, device=CUDA)
    lengths = torch.tensor([7, 5, 2])
    results = []
    for rec in (fused, unrolled):
        xi = x.clone().requires_grad_()
        out, _ = rec(xi, lengths=lengths)
        out.square().sum().backward()
        grads = [xi.grad] + [p.grad for p in rec.parameters()]
        results.append((out.detach(), grads))
    torch.testing.assert_close(results[0][0], results[1][0], atol=1e-5, rtol=1e-4)
    for a, b in zip(results[0][1], results[1][1], strict=True):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-3)


@pytest.mark.parametrize("output", ["softmax", "adaptive", "class"])
def test_an_rnnlm_gives_the_same_distribution_on_cuda_and_cpu(output: str) -> None:
    torch.manual_seed(0)
    cfg = RNNLMConfig(
        vocab_size=50, embedding_dim=16, hidden_size=16, output=output, adaptive_cutoffs=[10, 30]
    )
    cpu = RNNLM(cfg, torch.arange(50, 0, -1)).eval()
    gpu = RNNLM(cfg).to(CUDA).eval()
    gpu.load_state_dict(cpu.state_dict())
    x = torch.randint(50, (6, 4))
    want, _ = cpu(x)
    got, _ = gpu(x.to(CUDA))
    torch.testing.assert_close(got.cpu(), want, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("autocast", [None, "bfloat16"])
def test_the_trainer_trains_on_cuda_like_on_the_cpu(tmp_path, autocast) -> None:
    ids = torch.randint(40, (2000,), generator=torch.Generator().manual_seed(1))
    weights = {}
    for device in ("cpu", "cuda"):
        torch.manual_seed(0)
        model = RNNLM(RNNLMConfig(vocab_size=40, embedding_dim=16, hidden_size=16))
        cfg = TrainConfig(
            epochs=1, lr=1.0, schedule="constant", clip_norm=0.5, device=device,
            progress=False, autocast=autocast if device == "cuda" else None, max_steps=20,
        )  # fmt: skip
        stream = BPTTStream(ids, 4, 10, start_id=0)
        trainer = Trainer(model, cfg, stream, lambda m: {"loss": 0.0}, tmp_path / device, {})
        trainer.fit()
        assert next(model.parameters()).device.type == device
        weights[device] = {k: v.cpu() for k, v in model.state_dict().items()}
    tol = 1e-3 if autocast is None else 5e-2
    for k in weights["cpu"]:
        torch.testing.assert_close(weights["cuda"][k], weights["cpu"][k], atol=tol, rtol=tol)

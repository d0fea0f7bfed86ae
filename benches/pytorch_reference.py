"""PyTorch's figures for the shapes of `benches/dense.rs`, `benches/train_step.rs`,
`benches/layers.rs` and `benches/conv.rs`.

Not part of the Rust build or CI: it is the reference that `docs/PERFORMANCE.md` compares
mixprec against. Run it beside the Rust benches, in the same minutes, on the same machine:

    python3 -m venv /tmp/torchenv && /tmp/torchenv/bin/pip install torch
    /tmp/torchenv/bin/python benches/pytorch_reference.py [dense] [train] [rowwise] [conv2d]

It prints the median wall time per call (ms) of
- `nn.Linear` forward (with bias, no grad) at the three Dense shapes, in float32, under
  bfloat16 and float16 autocast (weights re-cast every call), and with the module in pure
  bfloat16;
- one training step (forward, cross-entropy, backward, Adam 1e-3) of an MLP
  784-1024-1024-10 at batch 256, in float32 and under bfloat16 autocast;
- `nn.LayerNorm(1024, eps=1e-3)` and `softmax(dim=-1)` at 4096x1024, forward (no grad) and
  backward (the gradient of the output given `dy`, forward not timed), in float32, under
  bfloat16 and float16 autocast (which leaves both in the input's type), and in pure bfloat16
  and float16, beside a scaled copy of the same bytes (the memory-bound pass).
- `nn.Conv2d` 64 -> 64 channels, 3x3, padding "same", ReLU, at batch 32 on 32x32 inputs in
  channels-last memory (mixprec's NHWC): the forward pass (no grad) and the backward pass alone
  (after an untimed forward, input gradient included), in float32 and under bfloat16 and
  float16 autocast.
"""

import statistics
import sys
import time

import torch

THREADS = 2
SHAPES = [(256, 1024, 1024), (1024, 1024, 1024), (64, 4096, 4096)]
ROWWISE = (4096, 1024)


def median_ms(fn, seconds=2.0, warmup=5):
    for _ in range(warmup):
        fn()
    times = []
    start = time.perf_counter()
    while time.perf_counter() - start < seconds or len(times) < 10:
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3


def dense_forward():
    rows = []
    for b, i, o in SHAPES:
        torch.manual_seed(1)
        layer = torch.nn.Linear(i, o)
        x = torch.rand(b, i) * 2 - 1
        flop = 2 * b * i * o

        with torch.inference_mode():
            f32 = median_ms(lambda: layer(x))

            def autocast(dtype):
                def run():
                    with torch.autocast("cpu", dtype=dtype):
                        return layer(x)

                return run

            ac_bf16 = median_ms(autocast(torch.bfloat16))
            ac_f16 = median_ms(autocast(torch.float16))
            pure = torch.nn.Linear(i, o).to(torch.bfloat16)
            xb = x.to(torch.bfloat16)
            pure_bf16 = median_ms(lambda: pure(xb))
        rows.append((f"{b}x{i}x{o}", f32, ac_bf16, ac_f16, pure_bf16, flop))
    print("Linear forward, median ms (GFLOP/s)")
    print("shape          float32            bf16 autocast      f16 autocast       pure bf16")
    for name, *ms, flop in rows:
        cells = "  ".join(f"{t:7.3f} ({flop / t / 1e6:6.0f})" for t in ms)
        print(f"{name:<14} {cells}")


def train_step():
    print("Training step, MLP 784-1024-1024-10, batch 256, Adam, median ms")
    for name, dtype in [("float32", None), ("bf16 autocast", torch.bfloat16)]:
        torch.manual_seed(1)
        model = torch.nn.Sequential(
            torch.nn.Linear(784, 1024),
            torch.nn.ReLU(),
            torch.nn.Linear(1024, 1024),
            torch.nn.ReLU(),
            torch.nn.Linear(1024, 10),
        )
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        loss_fn = torch.nn.CrossEntropyLoss()
        x = torch.rand(256, 784)
        y = torch.arange(256) % 10

        def step():
            opt.zero_grad(set_to_none=True)
            if dtype is None:
                loss = loss_fn(model(x), y)
            else:
                with torch.autocast("cpu", dtype=dtype):
                    loss = loss_fn(model(x), y)
            loss.backward()
            opt.step()

        print(f"{name:<14} {median_ms(step, seconds=4.0):7.3f}")


def rowwise():
    rows, n = ROWWISE
    print(f"LayerNorm and softmax at {rows}x{n}, median ms")
    print("case                 forward   backward  memory-bound pass")
    torch.manual_seed(1)
    base = torch.rand(rows, n) * 8 - 4
    cases = [
        ("float32", torch.float32, None),
        ("bf16 autocast", torch.bfloat16, torch.bfloat16),
        ("f16 autocast", torch.float16, torch.float16),
        ("pure bf16", torch.bfloat16, None),
        ("pure f16", torch.float16, None),
    ]
    for op_name, op in [
        ("layer_norm", lambda x, m: m(x)),
        ("softmax", lambda x, m: torch.softmax(x, dim=-1)),
    ]:
        for name, dtype, autocast in cases:
            layer_norm = torch.nn.LayerNorm(n, eps=1e-3)
            # Autocast keeps the float32 module; a pure case converts it.
            module = layer_norm if autocast is not None else layer_norm.to(dtype)
            # The input as a previous layer under that policy emits it.
            x = base.to(dtype)
            dy = torch.rand(rows, n)

            def forward():
                if autocast is None:
                    return op(x, module)
                with torch.autocast("cpu", dtype=autocast):
                    return op(x, module)

            with torch.inference_mode():
                fwd = median_ms(forward)
            xg = x.clone().requires_grad_(True)

            def backward():
                xg.grad = None
                if autocast is None:
                    y = op(xg, module)
                else:
                    with torch.autocast("cpu", dtype=autocast):
                        y = op(xg, module)
                t = time.perf_counter()
                y.backward(dy.to(y.dtype))
                return time.perf_counter() - t

            for _ in range(5):
                backward()
            bwd = statistics.median(backward() for _ in range(30)) * 1e3
            out = torch.empty_like(x)
            with torch.inference_mode():
                copy = median_ms(lambda: torch.mul(x, 0.5, out=out))
            print(f"{op_name + ' ' + name:<20} {fwd:8.3f}  {bwd:8.3f}  {copy:8.3f}")
CONV = (32, 32, 64, 64)  # batch, side, in channels, filters


def conv2d():
    batch, side, cin, filters = CONV
    flop = 2 * batch * side * side * 9 * cin * filters
    print(f"Conv2d {batch}x{side}x{side}x{cin} -> {filters}, 3x3 same + relu, median ms (GFLOP/s)")
    print("pass       float32            bf16 autocast      f16 autocast")
    torch.manual_seed(1)
    layer = torch.nn.Conv2d(cin, filters, 3, padding="same").to(memory_format=torch.channels_last)
    x = (torch.rand(batch, cin, side, side) * 2 - 1).to(memory_format=torch.channels_last)

    def forward(dtype):
        def run():
            with torch.inference_mode(), torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
                return torch.relu(layer(x))

        return median_ms(run)

    def backward(dtype):
        xg = x.clone().requires_grad_(True)
        times = []
        for i in range(15):
            with torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
                y = torch.relu(layer(xg))
            dy = torch.ones_like(y)
            t = time.perf_counter()
            y.backward(dy)
            if i >= 3:
                times.append(time.perf_counter() - t)
            layer.zero_grad(set_to_none=True)
            xg.grad = None
        return statistics.median(times) * 1e3

    dtypes = [None, torch.bfloat16, torch.float16]
    for name, fn, f in [("forward", forward, flop), ("backward", backward, 2 * flop)]:
        cells = "  ".join(f"{t:7.3f} ({f / t / 1e6:6.0f})" for t in (fn(d) for d in dtypes))
        print(f"{name:<10} {cells}")


SECTIONS = {"dense": dense_forward, "train": train_step, "rowwise": rowwise, "conv2d": conv2d}


def main():
    """Runs the sections named on the command line (`rowwise conv2d`), or all of them."""
    torch.set_num_threads(THREADS)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"oneDNN (mkldnn) available: {torch.backends.mkldnn.is_available()}")
    for name in sys.argv[1:] or SECTIONS:
        if name not in SECTIONS:
            sys.exit(f"unknown section {name!r}; expected some of {', '.join(SECTIONS)}")
        SECTIONS[name]()


if __name__ == "__main__":
    main()

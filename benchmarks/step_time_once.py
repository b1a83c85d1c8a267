"""One quick measurement of the demo step in this tree: ms per step (median of 6 calls of 24 steps, one thread) and
the first 12 hex digits of the SHA-256 of the latents after 24 steps. Run it in a source tree with
``python -c "$(cat benchmarks/step_time_once.py)"`` so that tree's mlscam is imported (``ab_step_time.py`` is the
full side-by-side benchmark)."""
import torch, time, statistics, hashlib
from mlscam import blas; blas.pin()
from mlscam.emulator import Emulator
torch.set_num_threads(1)
em = Emulator.from_checkpoint("mlscam/assets/demo/checkpoint.pt")
n = em.normalization
g = torch.Generator().manual_seed(0)
x = (torch.from_numpy(n.state_mean) + torch.from_numpy(n.state_std) * torch.randn(em.grid.nlat, em.grid.nlon, n.n_state, generator=g, dtype=torch.float64)).float()
z = em.encode(x)
z24 = em.step(z, 24)
ts=[]
for _ in range(6):
    t0=time.perf_counter(); em.step(z,24); ts.append((time.perf_counter()-t0)/24)
print(f"{statistics.median(ts)*1e3:.2f} ms/step", hashlib.sha256(z24.numpy().tobytes()).hexdigest()[:12])

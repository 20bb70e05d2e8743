"""Fingerprint of everything the harvest rows depend on: engine outputs (every named policy,
every backend/impl available on the CPU), run ids of every committed sweep, and RNG order.
Diff its output against the one made at the harvest commit (README.md).
    AUGBENCH_DATA=../shared/data OMP_NUM_THREADS=1 python scripts/fingerprint/engine_and_ids.py . (see README.md)
"""
import hashlib, sys, glob, os
import torch
torch.set_num_threads(1)
from augbench.augment import Engine, Policy, NAMED
from augbench.sweeps.schema import load_sweep, expand

def h(t):
    return hashlib.sha256(t.detach().contiguous().numpy().tobytes()).hexdigest()[:16]

g = torch.Generator().manual_seed(123)
x = torch.rand(16, 3, 32, 32, generator=g)
for name in sorted(NAMED):
    for ds in ("cifar10", "imagenette32"):
        try:
            pol = Policy.named(name, size=32, dataset=ds)
        except Exception as e:
            print(name, ds, "ERR", type(e).__name__); continue
        for backend, impl in (("fused", "numba"), ("fused", "torch"), ("kornia", None)):
            for seed in (0, 1):
                try:
                    eng = Engine(pol, backend=backend, seed=seed, impl=impl) if impl else Engine(pol, backend=backend, seed=seed)
                    out = eng(x.clone(), views=2)
                    outs = out if isinstance(out, (list, tuple)) else [out]
                    out2 = eng(x.clone(), views=2)
                    outs2 = out2 if isinstance(out2, (list, tuple)) else [out2]
                    print(name, ds, backend, impl, seed, [h(o) for o in outs], [h(o) for o in outs2])
                except Exception as e:
                    print(name, ds, backend, impl, seed, "ERR", type(e).__name__, str(e)[:80])
here = sys.argv[1] if len(sys.argv) > 1 else "."
for f in sorted(glob.glob(os.path.join(here, "sweeps", "*.yaml"))):
    try:
        cfgs = expand(load_sweep(f))
        print(os.path.basename(f), hashlib.sha256(" ".join(c.run_id for c in cfgs).encode()).hexdigest()[:16], len(cfgs))
    except Exception as e:
        print(os.path.basename(f), "ERR", type(e).__name__, str(e)[:80])

"""PyTorch CPU peer of mbpo's batched act: the SAC policy (obs -> 256 -> 256 -> 2 act, ReLU)
on N rows, then a tanh-Gaussian sample with log-std clipped to [-20, 2], as a rollout asks
for its actions. Prints one JSON line: {"kernel": "act", "ms": ..., "rows": N, ...}.
  /usr/bin/python3 tests/peers/torch_act.py --obs 11 --act 3 --rows 100000 --threads 1
"""
import argparse
import json
import time

import torch
from torch import nn


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--obs", type=int, default=11)
    ap.add_argument("--act", type=int, default=3)
    ap.add_argument("--rows", type=int, default=100000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    pi = nn.Sequential(nn.Linear(args.obs, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
                       nn.Linear(256, 2 * args.act))
    x = torch.randn(args.rows, args.obs)

    def act():
        mu, ls = pi(x).chunk(2, -1)
        return torch.tanh(mu + ls.clamp(-20, 2).exp() * torch.randn_like(mu))

    with torch.no_grad():
        act()
        times = []
        for _ in range(args.reps):
            t0 = time.perf_counter()
            act()
            times.append(time.perf_counter() - t0)
    times.sort()
    print(json.dumps({"kernel": "act", "peer": "torch " + torch.__version__,
                      "threads": args.threads, "rows": args.rows,
                      "ms": times[len(times) // 2] * 1e3}), flush=True)


if __name__ == "__main__":
    main()

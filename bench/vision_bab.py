"""Branch and bound (``bab``) beside alpha-CROWN and PGD on the shipped Fashion-MNIST model.

On the first ``--images`` Fashion-MNIST test images at ``--eps`` (default the model's 0.1):

- clean accuracy, and PGD-``--pgd-steps``x``--pgd-restarts`` accuracy (an upper bound on the
  robust accuracy);
- IBP-verified (the engine, ``robusttext.vision.verify.verified``);
- alpha-CROWN-verified by the engine (``compute_bounds(..., "alpha-crown")``) at its default
  steps and at ``--alpha-steps`` (more time): run on the images that are classified right, not
  IBP-verified and not flipped by PGD (the engine's alpha-CROWN bound is never below its IBP
  bound, and a sound bound cannot verify a flipped image, so every other image's answer is known
  without it); its seconds per image are measured on those images;
- bab (``robusttext.vision.bab.bab_verify``) on every image with ``--time-limit`` seconds per
  image: verified, counterexamples (each checked here again: in the ball, misclassified by the
  model) and timeouts, with its mean and largest seconds per image.

With ``--retry-limit`` the images that timed out are run again with that limit.

Soundness cross-checks (must print 0): bab verified yet flipped by PGD, bab counterexample yet
verified by IBP or alpha-CROWN.

    python bench/vision_bab.py --images 1000 --time-limit 10 --retry-limit 60
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import torch


def arguments():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--eps", type=float, default=0.1)
    parser.add_argument("--time-limit", type=float, default=10.0)
    parser.add_argument("--alpha-steps", type=int, default=200)
    parser.add_argument("--pgd-steps", type=int, default=100)
    parser.add_argument("--pgd-restarts", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--retry-limit", type=float, default=0.0,
                        help="run the images that timed out again with this limit (0: not)")
    return parser.parse_args()


def alpha_crown(model, images, labels, eps, steps):
    """``([K] bool verified, seconds per image)`` by the engine's alpha-CROWN, image by image."""
    from robusttext.bounds import compute_bounds
    from robusttext.bounds.specs import margin_matrix
    from robusttext.vision.verify import image_ball

    verified, started = [], time.perf_counter()
    for i in range(images.shape[0]):
        with torch.no_grad():
            lower = compute_bounds(model, image_ball(images[i:i + 1], eps), "alpha-crown",
                                   C=margin_matrix(labels[i:i + 1], 10), bound_upper=False,
                                   alpha_steps=steps)[0]
        verified.append(bool((lower > 0).all()))
    seconds = (time.perf_counter() - started) / max(images.shape[0], 1)
    return torch.tensor(verified, dtype=torch.bool), seconds


def main() -> int:
    args = arguments()
    torch.set_num_threads(args.threads)
    from robusttext.vision.bab import COUNTEREXAMPLE, TIMEOUT, VERIFIED, bab_verify
    from robusttext.vision.cli import load_data, resolve_checkpoint
    from robusttext.vision.io import load_model
    from robusttext.vision.pgd import pgd_attack
    from robusttext.vision.verify import verified

    model, _, _ = load_model(resolve_checkpoint("fmnist-dm-small"))
    data = load_data("fashion-mnist", "test").subset(args.images)
    x, y, n, eps = data.images, data.labels, len(data), args.eps
    print(f"`python {' '.join(sys.argv)}`; torch {torch.__version__}, {args.threads} thread(s), "
          f"{platform.machine()}, {os.cpu_count()} CPUs (2 shared cores), load average "
          f"{os.getloadavg()[0]:.1f}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    with torch.no_grad():
        correct = model(x).argmax(1) == y
        ibp = verified(model, x, y, eps, "ibp") & correct
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    started = time.perf_counter()
    _, flipped = pgd_attack(model, x, y, eps, args.pgd_steps, args.pgd_restarts,
                            generator=generator)
    pgd_seconds = (time.perf_counter() - started) / n
    pgd = correct & ~flipped
    open_ = (correct & ~ibp & pgd).nonzero().squeeze(1)
    alpha = {}
    for steps in (20, args.alpha_steps):
        found, seconds = alpha_crown(model, x[open_], y[open_], eps, steps)
        mask = ibp.clone()
        mask[open_] |= found
        alpha[steps] = (mask, seconds)
        print(f"alpha-CROWN {steps} steps: {int(found.sum())} of {len(open_)} open images "
              f"verified, {seconds:.2f} s per open image", flush=True)
    started = time.perf_counter()
    outcomes = bab_verify(model, x, y, eps, time_limit=args.time_limit)
    bab_seconds = time.perf_counter() - started
    status = [o.status for o in outcomes]
    bab = torch.tensor([s == VERIFIED for s in status])
    for i, o in enumerate(outcomes):  # every counterexample checked here again
        if o.status == COUNTEREXAMPLE:
            point = o.counterexample
            inside = bool(((point - x[i]).abs() <= eps + 1e-6).all()) and (
                0 <= float(point.min()) and float(point.max()) <= 1)
            with torch.no_grad():
                wrong = int(model(point[None]).argmax(1)) != int(y[i])
            if not (inside and wrong):
                print(f"image {i}: counterexample not in the ball or not misclassified",
                      file=sys.stderr)
                return 1
    seconds = [o.seconds for o in outcomes]
    hard = [o for o, i in zip(outcomes, range(n)) if i in set(open_.tolist())]
    print()
    print("| method | verified % | images | s per image (mean) | s per image (max) |")
    print("|---|---|---|---|---|")
    print(f"| clean | {100 * correct.float().mean():.2f} | {int(correct.sum())} | | |")
    print(f"| PGD-{args.pgd_steps}x{args.pgd_restarts} (upper bound) | "
          f"{100 * pgd.float().mean():.2f} | {int(pgd.sum())} | {pgd_seconds:.3f} | |")
    print(f"| IBP | {100 * ibp.float().mean():.2f} | {int(ibp.sum())} | | |")
    for steps, (mask, sec) in alpha.items():
        print(f"| alpha-CROWN ({steps} steps) | {100 * mask.float().mean():.2f} | "
              f"{int(mask.sum())} | {sec:.2f} (open images) | |")
    print(f"| bab ({args.time_limit:g} s limit) | {100 * bab.float().mean():.2f} | "
          f"{int(bab.sum())} | {sum(seconds) / n:.2f} | {max(seconds):.2f} |")
    upper = torch.tensor([s != COUNTEREXAMPLE for s in status])
    print()
    print(f"bab: {status.count(VERIFIED)} verified, {status.count(COUNTEREXAMPLE)} "
          f"counterexamples, {status.count(TIMEOUT)} timeouts; robust accuracy in "
          f"[{100 * bab.float().mean():.2f}, {100 * upper.float().mean():.2f}]; "
          f"{bab_seconds:.0f} s in all; on the {len(open_)} images IBP left open and PGD "
          f"did not flip: {sum(o.status == VERIFIED for o in hard)} verified, "
          f"{sum(o.status == COUNTEREXAMPLE for o in hard)} counterexamples, "
          f"{sum(o.status == TIMEOUT for o in hard)} timeouts, mean "
          f"{sum(o.seconds for o in hard) / max(len(hard), 1):.2f} s")
    timeouts = [i for i, s in enumerate(status) if s == TIMEOUT]
    if timeouts and args.retry_limit > 0:
        again = bab_verify(model, x[timeouts], y[timeouts], eps, time_limit=args.retry_limit)
        print(f"timeouts again at {args.retry_limit:g} s: " + ", ".join(
            f"image {i}: {o.status} in {o.seconds:.1f} s ({o.domains} domains)"
            for i, o in zip(timeouts, again)))
    bad_bab = int((bab & ~pgd).sum())
    bad_cex = int((~upper & (ibp | alpha[20][0] | alpha[args.alpha_steps][0])).sum())
    print(f"soundness: bab verified yet PGD-flipped or misclassified {bad_bab}; bab "
          f"counterexample yet bound-verified {bad_cex}")
    return 1 if bad_bab or bad_cex else 0


if __name__ == "__main__":
    sys.exit(main())

"""Training speed of the ch. 5.1 notebook model in two source trees, in one run.

    OMP_NUM_THREADS=2 python bench/compare_trees.py BEFORE_DIR AFTER_DIR

Each tree must hold a fastconv package with its extension built in place
(``python setup.py build_ext --inplace``).  The trees are timed in turns
(ABAB...), each turn in a fresh subprocess that trains one epoch of
``--images`` random images at batch 64 after a warm-up epoch, so that both
see the same machine state; the script prints the median images/s of each
and their ratio.
"""

import argparse
import os
import statistics
import subprocess
import sys

TURN = """
import sys, time
import numpy as np
from fastconv.examples.mnist import notebook_model
from fastconv.utils import set_random_seed, to_categorical
set_random_seed(0)
rng = np.random.default_rng(0)
x = rng.random(({images}, 28, 28, 1), dtype=np.float32)
y = to_categorical(rng.integers(0, 10, {images}), 10)
model = notebook_model()
model.fit(x[:640], y[:640], batch_size=64, epochs=1, verbose=0)
start = time.perf_counter()
model.fit(x, y, batch_size=64, epochs=1, verbose=0)
print({images} / (time.perf_counter() - start))
"""


def images_per_second(tree, images):
    env = dict(os.environ, PYTHONPATH=os.path.abspath(tree))
    result = subprocess.run([sys.executable, "-c", TURN.format(images=images)], env=env,
                            capture_output=True, text=True, check=True, cwd=tree)
    return float(result.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("--images", type=int, default=6400)
    parser.add_argument("--turns", type=int, default=5)
    args = parser.parse_args()
    rates = {"before": [], "after": []}
    for _ in range(args.turns):
        for name in rates:
            rates[name].append(images_per_second(getattr(args, name), args.images))
    medians = {name: statistics.median(values) for name, values in rates.items()}
    print(f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, "
          f"{args.turns} turns of {args.images} images at batch 64")
    for name, values in rates.items():
        print(f"{name:6s} median {medians[name]:8.0f} images/s  "
              f"(runs: {', '.join(f'{v:.0f}' for v in values)})")
    print(f"after / before: {medians['after'] / medians['before']:.3f}")


if __name__ == "__main__":
    main()

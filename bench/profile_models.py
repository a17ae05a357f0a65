"""Per-layer profiles of the MNIST notebook convnet (batch 64) and the
"Deep Learning with Python" 5.2 cats-vs-dogs convnet (batch 32), against
the FMA peak of bench/fma_probe.c measured in the same run.

    OMP_NUM_THREADS=2 python bench/profile_models.py [--unfused]

``--unfused`` runs each ReLU Conv2D and its MaxPooling2D as two steps
(``fastconv.models.functional.FUSE = False``) for a before/after comparison.
Inputs are random (the figures do not depend on the pixel values), labels
random classes; each table is ``model.profile``'s.
"""

import argparse

import numpy as np
from bench_images import IMAGE_SIZE, book_model
from common import describe_machine
from fma_peak import fma_line, fma_probe

import fastconv
from fastconv.examples.mnist import notebook_model
from fastconv.models import functional


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="timed training steps per model")
    parser.add_argument("--threads", type=int, default=fastconv.get_num_threads(),
                        help="threads (default: OMP_NUM_THREADS)")
    parser.add_argument("--unfused", action="store_true",
                        help="run each ReLU Conv2D and its MaxPooling2D as two steps")
    args = parser.parse_args()
    functional.FUSE = not args.unfused
    fastconv.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    probe = fma_probe(args.threads)
    for line in describe_machine():
        print(line)
    print(fma_line(probe))
    peak = probe and probe["gflops"]
    models = [("MNIST notebook convnet", notebook_model(), (28, 28, 1), 64,
               np.eye(10, dtype=np.float32)),
              ("DLwP 5.2 cats-vs-dogs convnet", book_model(), IMAGE_SIZE + (3,), 32,
               np.array([[0.0], [1.0]], np.float32))]
    for title, model, shape, batch_size, classes in models:
        x = rng.random((batch_size,) + shape, dtype=np.float32)
        y = classes[rng.integers(0, len(classes), batch_size)]
        print(f"\n{title}")
        model.profile(x, y, batch_size=batch_size, repeat=args.repeat, peak_gflops=peak)


if __name__ == "__main__":
    main()

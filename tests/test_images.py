"""Tests of the image pipeline: image files <-> arrays (fastconv.image_utils),
the tf.data-like Dataset (fastconv.dataset), image_dataset_from_directory
and Keras 2's ImageDataGenerator, on tiny image files written here.

Tests that read or write image files need Pillow and are skipped without it;
the Dataset and transform tests run on NumPy alone."""

import gc
import shutil
import sys
import threading

import numpy as np
import pytest

import fastconv as keras
from fastconv.dataset import AUTOTUNE, INFINITE_CARDINALITY, UNKNOWN_CARDINALITY, Dataset
from fastconv.preprocessing.image import ImageDataGenerator, apply_affine_transform

PILLOW_REASON = 'image files need Pillow: pip install "fastconv[images]"'


@pytest.fixture
def pil():
    return pytest.importorskip("PIL.Image", reason=PILLOW_REASON)


def write_image(pil, path, pixels, format=None):
    """Writes uint8 ``pixels`` (h, w) or (h, w, 3|4) to ``path``; returns the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pil.fromarray(np.asarray(pixels, np.uint8)).save(path, format=format)
    return path


def gray(height, width, value):
    return np.full((height, width, 3), value, np.uint8)


# Gray levels survive JPEG and GIF exactly.
CAT, DOG = 40, 200


@pytest.fixture
def tree(pil, tmp_path):
    """cats/: 3 images (PNG, JPEG, BMP) of gray CAT; dogs/: 2 (GIF, PNG) of
    gray DOG; plus files and folders that are not images of a class."""
    root = tmp_path / "pets"
    write_image(pil, root / "cats" / "c1.png", gray(5, 7, CAT))
    write_image(pil, root / "cats" / "c2.JPG", gray(8, 4, CAT), format="JPEG")
    write_image(pil, root / "cats" / "deeper" / "c3.bmp", gray(6, 6, CAT))
    write_image(pil, root / "dogs" / "d1.gif", gray(4, 9, DOG))
    write_image(pil, root / "dogs" / "d2.png", gray(3, 3, DOG))
    (root / "dogs" / "notes.txt").write_text("not an image")
    write_image(pil, root / ".hidden" / "h.png", gray(3, 3, 0))
    return root


def prefetch_threads():
    return [t for t in threading.enumerate() if t.name == "fastconv-prefetch" and t.is_alive()]


# ------------------------------------------------------------------ image_utils


def test_png_round_trips_exactly(pil, tmp_path):
    rgb = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3) * 7
    keras.utils.save_img(tmp_path / "rgb.png", rgb, scale=False)
    loaded = keras.utils.img_to_array(keras.utils.load_img(tmp_path / "rgb.png"))
    assert loaded.dtype == np.float32 and loaded.shape == (2, 3, 3)
    np.testing.assert_array_equal(loaded, rgb)

    levels = np.array([[[0], [10]], [[20], [255]]], np.float32)
    keras.utils.save_img(str(tmp_path / "gray.png"), levels, scale=False)
    img = keras.utils.load_img(tmp_path / "gray.png", color_mode="grayscale")
    np.testing.assert_array_equal(keras.utils.img_to_array(img, dtype="float64"), levels)

    rgba = np.dstack([rgb, np.full((2, 3), 9, np.uint8)])
    keras.utils.save_img(tmp_path / "rgba.png", rgba, scale=False)
    np.testing.assert_array_equal(
        keras.utils.img_to_array(keras.utils.load_img(tmp_path / "rgba.png", color_mode="rgba")),
        rgba)


def test_array_to_img_scales_to_0_255(pil):
    img = keras.utils.array_to_img(np.array([[[0.0], [0.5]], [[1.0], [0.25]]]))
    assert img.mode == "L"
    np.testing.assert_array_equal(np.asarray(img), [[0, 127], [255, 63]])
    with pytest.raises(ValueError, match="rank 3"):
        keras.utils.array_to_img(np.zeros((2, 2)))


def test_save_img_jpeg_drops_alpha_with_a_warning(pil, tmp_path):
    with pytest.warns(UserWarning, match="RGBA"):
        keras.utils.save_img(tmp_path / "a.jpg", np.full((4, 4, 4), 100, np.uint8), scale=False)
    assert keras.utils.load_img(tmp_path / "a.jpg").mode == "RGB"


def test_load_img_resizes_and_crops_to_the_aspect_ratio(pil, tmp_path):
    columns = np.tile(np.arange(6, dtype=np.uint8) * 10, (2, 1))  # 2 high, 6 wide
    path = write_image(pil, tmp_path / "wide.png", columns)
    img = keras.utils.load_img(path, color_mode="grayscale", target_size=(2, 2),
                               keep_aspect_ratio=True)
    np.testing.assert_array_equal(np.asarray(img), [[20, 30], [20, 30]])  # centre columns
    img = keras.utils.load_img(path, target_size=(4, 12))  # nearest: each pixel twice
    np.testing.assert_array_equal(np.asarray(img)[:, :, 0], np.repeat(np.repeat(columns, 2, 0),
                                                                       2, 1))
    with pytest.raises(ValueError, match="interpolation"):
        keras.utils.load_img(path, target_size=(3, 3), interpolation="cubic")


def test_corrupt_and_truncated_files_name_the_file(pil, tmp_path):
    garbage = tmp_path / "garbage.jpg"
    garbage.write_bytes(b"this is not a JPEG")
    with pytest.raises(ValueError, match="garbage.jpg"):
        keras.utils.load_img(garbage)
    whole = write_image(pil, tmp_path / "whole.png", np.random.default_rng(0).integers(
        0, 256, (32, 32, 3)))
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(whole.read_bytes()[:300])
    with pytest.raises(ValueError, match="truncated.png"):
        keras.utils.load_img(truncated)


def test_missing_pillow_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "PIL", None)
    for call in (lambda: keras.utils.load_img(tmp_path / "x.png"),
                 lambda: keras.utils.array_to_img(np.zeros((2, 2, 3))),
                 lambda: keras.utils.image_dataset_from_directory(tmp_path),
                 lambda: ImageDataGenerator().flow_from_directory(tmp_path)):
        with pytest.raises(ImportError, match=r'pip install "fastconv\[images\]"'):
            call()


# ---------------------------------------------------------------------- Dataset


def test_batch_unbatch_and_lengths():
    x, y = np.arange(10.0).reshape(10, 1), np.arange(10, dtype=np.int32)
    ds = Dataset.from_tensor_slices((x, y))
    assert len(ds) == 10
    batches = list(ds.batch(4))
    assert [b[0].shape for b in batches] == [(4, 1), (4, 1), (2, 1)]
    np.testing.assert_array_equal(batches[2][1], [8, 9])
    assert len(ds.batch(4)) == 3 and len(ds.batch(4, drop_remainder=True)) == 2
    rows = list(ds.batch(4).unbatch())
    assert len(rows) == 10 and all(r[1] == i for i, r in enumerate(rows))
    assert ds.batch(4).unbatch().cardinality() == UNKNOWN_CARDINALITY
    with pytest.raises(TypeError, match="unknown"):
        len(ds.unbatch())
    with pytest.raises(TypeError, match="infinite"):
        len(ds.repeat())
    assert ds.repeat().cardinality() == INFINITE_CARDINALITY
    assert len(ds.repeat().take(25)) == 25 and len(list(ds.repeat().take(25))) == 25
    with pytest.raises(ValueError, match="one length"):
        Dataset.from_tensor_slices((x, y[:3]))


def test_take_skip_repeat_map():
    ds = Dataset.from_tensor_slices(np.arange(5))
    assert list(ds.take(2)) == [0, 1] and len(ds.take(9)) == 5
    assert list(ds.skip(3)) == [3, 4] and len(ds.skip(3)) == 2 and len(ds.skip(9)) == 0
    assert list(ds.take(-1)) == list(ds) and list(ds.skip(-1)) == []
    assert list(ds.repeat(2)) == [0, 1, 2, 3, 4] * 2 and len(ds.repeat(2)) == 10
    pairs = Dataset.from_tensor_slices((np.arange(3), np.arange(3) * 10))
    assert list(pairs.map(lambda a, b: a + b)) == [0, 11, 22]
    assert list(ds.map(lambda a: (a, -a)).take(2)) == [(0, 0), (1, -1)]
    assert [b.tolist() for b in ds.as_numpy_iterator()] == [0, 1, 2, 3, 4]


def test_shuffle_is_a_seeded_permutation_redrawn_each_epoch():
    ds = Dataset.from_tensor_slices(np.arange(20)).shuffle(100, seed=3)
    first, second = list(ds), list(ds)
    assert sorted(first) == list(range(20)) and first != second
    again = Dataset.from_tensor_slices(np.arange(20)).shuffle(100, seed=3)
    assert list(again) == first and list(again) == second
    fixed = Dataset.from_tensor_slices(np.arange(20)).shuffle(100, seed=3,
                                                              reshuffle_each_iteration=False)
    assert list(fixed) == list(fixed)
    assert list(Dataset.from_tensor_slices(np.arange(5)).shuffle(1, seed=0)) == [0, 1, 2, 3, 4]
    small_buffer = list(Dataset.from_tensor_slices(np.arange(20)).shuffle(4, seed=1))
    assert sorted(small_buffer) == list(range(20))
    # A buffer of 4 can hold back an element but never send one ahead by more than 3.
    assert all(position >= value - 3 for position, value in enumerate(small_buffer))
    keras.utils.set_random_seed(5)
    unseeded = list(Dataset.from_tensor_slices(np.arange(20)).shuffle(100))
    keras.utils.set_random_seed(5)
    assert list(Dataset.from_tensor_slices(np.arange(20)).shuffle(100)) == unseeded


def test_cache_computes_each_element_once():
    calls = []
    ds = Dataset.from_tensor_slices(np.arange(4)).map(lambda v: calls.append(v) or v * 2).cache()
    assert list(ds.take(2)) == [0, 2]  # a partial pass caches nothing
    assert list(ds) == [0, 2, 4, 6] and list(ds) == [0, 2, 4, 6]
    assert calls == [0, 1, 0, 1, 2, 3]


def slow_dataset(calls, count=12):
    def work(v):
        calls.append(threading.current_thread().name)
        threading.Event().wait(0.002)  # stands for decoding an image
        return v * v, -v

    return Dataset.from_tensor_slices(np.arange(count)).map(work)


def test_prefetch_gives_the_same_elements_from_a_background_thread():
    plain_calls, prefetched_calls = [], []
    plain = list(slow_dataset(plain_calls).batch(5))
    prefetched = slow_dataset(prefetched_calls).batch(5).prefetch(AUTOTUNE)
    for _ in range(2):  # a fresh thread each epoch
        got = list(prefetched)
        assert len(got) == len(plain) == 3
        for (a, b), (c, d) in zip(got, plain):
            np.testing.assert_array_equal(a, c)
            np.testing.assert_array_equal(b, d)
        assert not prefetch_threads()
    assert set(plain_calls) == {threading.current_thread().name}
    assert set(prefetched_calls) == {"fastconv-prefetch"}
    assert len(prefetched) == 3


def test_prefetch_runs_ahead_by_its_buffer_and_no_further():
    calls = []
    iterator = iter(slow_dataset(calls).prefetch(2))
    assert next(iterator) == (0, 0)
    # The producer fills the buffer (2) and waits with the next element in hand.
    deadline = threading.Event()
    for _ in range(500):
        if len(calls) >= 4:
            break
        deadline.wait(0.01)
    deadline.wait(0.05)
    assert len(calls) == 4
    assert next(iterator) == (1, -1)
    iterator.close()
    assert not prefetch_threads()


def test_prefetch_thread_ends_on_break_and_on_drop():
    calls = []
    ds = slow_dataset(calls, count=50).prefetch(3).prefetch(1)  # two threads
    for x, _ in ds:
        if x == 4:
            break
    assert not prefetch_threads()
    iterator = iter(ds)
    next(iterator)
    del iterator
    gc.collect()
    assert not prefetch_threads()
    assert len(calls) < 100  # neither pass ran to the end


def test_prefetch_raises_the_pipeline_error_in_the_consumer():
    def fail_at_three(v):
        if v == 3:
            raise ValueError("bad element 3")
        return v

    ds = Dataset.from_tensor_slices(np.arange(6)).map(fail_at_three).prefetch(2)
    seen = []
    with pytest.raises(ValueError, match="bad element 3"):
        for v in ds:
            seen.append(v)
    assert seen == [0, 1, 2]
    assert not prefetch_threads()


# ------------------------------------------------- image_dataset_from_directory


def test_labels_class_names_and_message(tree, capsys):
    ds = keras.utils.image_dataset_from_directory(tree, image_size=(4, 5), batch_size=None,
                                                  shuffle=False)
    assert capsys.readouterr().out == "Found 5 files belonging to 2 classes.\n"
    assert ds.class_names == ["cats", "dogs"]
    names = [p.replace(str(tree), "") for p in ds.file_paths]
    assert names == ["/cats/c1.png", "/cats/c2.JPG", "/cats/deeper/c3.bmp", "/dogs/d1.gif",
                     "/dogs/d2.png"]
    elements = list(ds)
    assert [int(label) for _, label in elements] == [0, 0, 0, 1, 1]
    for image, label in elements:
        assert image.dtype == np.float32 and image.shape == (4, 5, 3)
        assert label.dtype == np.int32
        np.testing.assert_allclose(image, CAT if label == 0 else DOG, atol=1e-3)


def test_label_modes_and_color_modes(tree):
    options = dict(image_size=(3, 3), batch_size=5, shuffle=False, verbose=False)
    _, labels = next(iter(keras.utils.image_dataset_from_directory(
        tree, label_mode="categorical", **options)))
    assert labels.dtype == np.float32
    np.testing.assert_array_equal(labels, [[1, 0]] * 3 + [[0, 1]] * 2)
    _, labels = next(iter(keras.utils.image_dataset_from_directory(
        tree, label_mode="binary", **options)))
    assert labels.dtype == np.float32
    np.testing.assert_array_equal(labels, [[0]] * 3 + [[1]] * 2)
    images = next(iter(keras.utils.image_dataset_from_directory(
        tree, label_mode=None, color_mode="grayscale", **options)))
    assert isinstance(images, np.ndarray) and images.shape == (5, 3, 3, 1)
    images, _ = next(iter(keras.utils.image_dataset_from_directory(
        tree, color_mode="rgba", **options)))
    assert images.shape == (5, 3, 3, 4)
    np.testing.assert_allclose(images[..., 3], 255)
    # Explicit labels follow every image below the directory in path order,
    # the hidden folder's too (as Keras).
    ds = keras.utils.image_dataset_from_directory(tree, labels=[7, 4, 4, 2, 2, 2],
                                                  **{**options, "batch_size": 6})
    np.testing.assert_array_equal(next(iter(ds))[1], [7, 4, 4, 2, 2, 2])
    assert ds.class_names == ["2", "4", "7"]
    write_image(pytest.importorskip("PIL.Image"), tree / "birds" / "b.png", gray(2, 2, 9))
    with pytest.raises(ValueError, match="exactly 2"):
        keras.utils.image_dataset_from_directory(tree, label_mode="binary", verbose=False)
    ds = keras.utils.image_dataset_from_directory(tree, class_names=["dogs", "cats"], **options)
    assert ds.class_names == ["dogs", "cats"]
    np.testing.assert_array_equal(next(iter(ds))[1], [0, 0, 1, 1, 1])
    with pytest.raises(ValueError, match="class_names"):
        keras.utils.image_dataset_from_directory(tree, class_names=["cats", "cows"])


def test_batches_and_seeded_shuffling(tree):
    def make():
        return keras.utils.image_dataset_from_directory(tree, image_size=(4, 4), batch_size=2,
                                                        seed=7, verbose=False)

    ds = make()
    assert len(ds) == 3
    first = [labels.tolist() for _, labels in ds]
    assert [len(labels) for labels in first] == [2, 2, 1]
    assert sorted(sum(first, [])) == [0, 0, 0, 1, 1]
    again = make()
    assert [labels.tolist() for _, labels in again] == first
    orders = {tuple(sum([labels.tolist() for _, labels in ds], [])) for _ in range(6)}
    assert len(orders) > 1  # reshuffled each epoch
    for images, labels in ds:
        np.testing.assert_allclose(images[:, 0, 0, 0], np.where(labels == 0, CAT, DOG),
                                   atol=1e-3)


def test_validation_split(tree, capsys):
    with pytest.raises(ValueError, match="seed"):
        keras.utils.image_dataset_from_directory(tree, validation_split=0.2, subset="training")
    with pytest.raises(ValueError, match="validation_split"):
        keras.utils.image_dataset_from_directory(tree, subset="training", seed=1)
    capsys.readouterr()
    train, val = keras.utils.image_dataset_from_directory(
        tree, validation_split=0.4, subset="both", seed=11, image_size=(2, 2))
    assert capsys.readouterr().out == ("Found 5 files belonging to 2 classes.\n"
                                       "Using 3 files for training.\n"
                                       "Using 2 files for validation.\n")
    assert len(train.file_paths) == 3 and len(val.file_paths) == 2
    assert sorted(train.file_paths + val.file_paths) == sorted(
        keras.utils.image_dataset_from_directory(tree, shuffle=False, verbose=False).file_paths)
    only_val = keras.utils.image_dataset_from_directory(
        tree, validation_split=0.4, subset="validation", seed=11, verbose=False)
    assert only_val.file_paths == val.file_paths
    assert train.class_names == val.class_names == ["cats", "dogs"]


def test_resizing_crop_and_pad(pil, tmp_path):
    root = tmp_path / "shapes"
    write_image(pil, root / "a" / "wide.png", np.tile(np.arange(6, dtype=np.uint8) * 10, (2, 1)))
    options = dict(image_size=(2, 2), interpolation="nearest", shuffle=False, verbose=False,
                   color_mode="grayscale", label_mode=None, batch_size=None)
    cropped = next(iter(keras.utils.image_dataset_from_directory(
        root, crop_to_aspect_ratio=True, **options)))
    np.testing.assert_array_equal(cropped[..., 0], [[20, 30], [20, 30]])
    options["image_size"] = (6, 6)
    padded = next(iter(keras.utils.image_dataset_from_directory(
        root, pad_to_aspect_ratio=True, **options)))
    expected = np.zeros((6, 6))
    expected[2:4] = np.arange(6) * 10
    np.testing.assert_array_equal(padded[..., 0], expected)
    with pytest.raises(ValueError, match="Only one"):
        keras.utils.image_dataset_from_directory(root, crop_to_aspect_ratio=True,
                                                 pad_to_aspect_ratio=True)
    with pytest.raises(ValueError, match="interpolation"):
        keras.utils.image_dataset_from_directory(root, interpolation="gaussian")


def test_decoding_happens_in_the_prefetch_thread(tree, monkeypatch):
    from fastconv import image_utils
    threads = []
    original = image_utils.open_image

    def spy(*args, **kwargs):
        threads.append(threading.current_thread().name)
        return original(*args, **kwargs)

    monkeypatch.setattr(image_utils, "open_image", spy)
    list(keras.utils.image_dataset_from_directory(tree, image_size=(2, 2), verbose=False))
    assert threads == ["fastconv-prefetch"] * 5


def test_empty_directory_and_corrupt_file(tree, tmp_path, capsys):
    (tmp_path / "empty" / "cats").mkdir(parents=True)
    with pytest.raises(ValueError, match="No images found in directory"):
        keras.utils.image_dataset_from_directory(tmp_path / "empty")
    assert capsys.readouterr().out == "Found 0 files belonging to 1 classes.\n"
    with pytest.raises(FileNotFoundError):
        keras.utils.image_dataset_from_directory(tmp_path / "missing")
    (tree / "dogs" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    ds = keras.utils.image_dataset_from_directory(tree, image_size=(2, 2), verbose=False)
    with pytest.raises(ValueError, match="broken.png"):
        list(ds)
    assert not prefetch_threads()


# -------------------------------------------------------- ImageDataGenerator


SQUARE = np.arange(16, dtype=np.float32).reshape(4, 4, 1)


def test_flip_rotation_and_shift_by_hand():
    generator = ImageDataGenerator(fill_mode="constant", cval=-1.0)
    np.testing.assert_array_equal(generator.apply_transform(SQUARE, {"flip_horizontal": True}),
                                  SQUARE[:, ::-1])
    np.testing.assert_array_equal(generator.apply_transform(SQUARE, {"flip_vertical": True}),
                                  SQUARE[::-1])
    # +90 degrees is counter-clockwise: the right column becomes the top row.
    np.testing.assert_allclose(generator.apply_transform(SQUARE, {"theta": 90})[..., 0],
                               [[3, 7, 11, 15], [2, 6, 10, 14], [1, 5, 9, 13], [0, 4, 8, 12]],
                               atol=1e-5)
    shifted = generator.apply_transform(SQUARE, {"tx": 1, "ty": -1})[..., 0]
    np.testing.assert_array_equal(shifted, [[-1, -1, -1, -1], [1, 2, 3, -1], [5, 6, 7, -1],
                                            [9, 10, 11, -1]])


@pytest.mark.parametrize("fill_mode, expected", [("constant", [3, 4, 0, 0]),
                                                 ("nearest", [3, 4, 4, 4]),
                                                 ("reflect", [3, 4, 4, 3]),
                                                 ("wrap", [3, 4, 1, 2])])
def test_fill_modes(fill_mode, expected):
    row = np.array([[[1.0], [2.0], [3.0], [4.0]]])  # 1 x 4 x 1
    out = apply_affine_transform(row, tx=2, row_axis=0, col_axis=1, channel_axis=2,
                                 fill_mode=fill_mode)
    np.testing.assert_array_equal(out[0, :, 0], expected)


def test_zoom_and_channels_first_axes():
    ramp = np.tile(np.arange(4.0), (4, 1))[None]  # channels first: value = column
    zoomed = apply_affine_transform(ramp, zx=0.5, zy=0.5)  # magnified about the centre 1.5
    np.testing.assert_allclose(zoomed[0], np.tile([0.75, 1.25, 1.75, 2.25], (4, 1)))
    assert apply_affine_transform(ramp) is ramp


def test_flow_batches_rescale_and_endless_next():
    x = np.arange(3 * 2 * 2 * 1, dtype=np.float32).reshape(3, 2, 2, 1)
    y = np.array([0, 1, 2])
    flow = ImageDataGenerator(rescale=0.5).flow(x, y, batch_size=2, shuffle=False)
    assert len(flow) == 2
    batch_x, batch_y = flow[0]
    np.testing.assert_array_equal(batch_x, x[:2] * 0.5)
    np.testing.assert_array_equal(batch_y, [0, 1])
    assert [len(next(flow)[1]) for _ in range(5)] == [2, 1, 2, 1, 2]
    assert [b[1].tolist() for b in (flow[0], flow[1])] == [[0, 1], [2]]
    with pytest.raises(ValueError, match="has length 2"):
        flow[2]
    assert next(ImageDataGenerator().flow(x, batch_size=3, shuffle=False)).shape == (3, 2, 2, 1)
    with pytest.raises(ValueError, match="rank 4"):
        ImageDataGenerator().flow(x[0])


def test_flow_random_transforms_repeat_with_a_seed():
    x = np.random.default_rng(0).random((6, 5, 5, 3)).astype(np.float32)
    generator = ImageDataGenerator(rotation_range=30, width_shift_range=0.2,
                                   height_shift_range=2, shear_range=10, zoom_range=0.2,
                                   horizontal_flip=True, channel_shift_range=0.1,
                                   brightness_range=(0.8, 1.2))
    first = generator.flow(x, batch_size=4, seed=9)
    second = generator.flow(x, batch_size=4, seed=9)
    for _ in range(3):
        np.testing.assert_array_equal(next(first), next(second))
    np.testing.assert_array_equal(first[1], second[1])
    batch = next(generator.flow(x, batch_size=6, seed=1))
    assert batch.shape == x.shape and np.all(np.isfinite(batch))
    flips = ImageDataGenerator(horizontal_flip=True).flow(x[:1], batch_size=1, seed=2)
    seen = {tuple(next(flips)[0, 0, :, 0]) for _ in range(20)}
    assert seen == {tuple(x[0, 0, :, 0]), tuple(x[0, 0, ::-1, 0])}


def test_flow_subset_and_shuffled_epochs():
    x = np.arange(8, dtype=np.float32).reshape(8, 1, 1, 1)
    y = np.array([0, 1] * 4)
    generator = ImageDataGenerator(validation_split=0.5)
    val = generator.flow(x, y, batch_size=8, shuffle=False, subset="validation")
    np.testing.assert_array_equal(val[0][0].ravel(), [0, 1, 2, 3])
    train = generator.flow(x, y, batch_size=8, seed=4, subset="training")
    epoch_one = train[0][0].ravel().tolist()
    train.on_epoch_end()
    epoch_two = train[0][0].ravel().tolist()
    assert sorted(epoch_one) == sorted(epoch_two) == [4, 5, 6, 7] and epoch_one != epoch_two
    with pytest.raises(ValueError, match="different number of classes"):
        generator.flow(x, np.array([0] * 4 + [1] * 4), subset="training")


def test_generator_argument_checks():
    with pytest.raises(ValueError, match="fill_mode"):
        ImageDataGenerator(fill_mode="mirror")
    with pytest.raises(ValueError, match="zoom_range"):
        ImageDataGenerator(zoom_range=(1, 2, 3))
    with pytest.raises(ValueError, match="validation_split"):
        ImageDataGenerator(validation_split=1.5)


def test_featurewise_statistics_from_fit():
    x = np.random.default_rng(1).random((10, 3, 3, 2)).astype(np.float32) * 5 + 2
    generator = ImageDataGenerator(featurewise_center=True, featurewise_std_normalization=True)
    generator.fit(x)
    out = generator.flow(x, batch_size=10, shuffle=False)[0]
    np.testing.assert_allclose(out.mean(axis=(0, 1, 2)), 0, atol=1e-5)
    np.testing.assert_allclose(out.std(axis=(0, 1, 2)), 1, atol=1e-4)


def test_flow_from_directory(tree, capsys):
    generator = ImageDataGenerator(rescale=1 / 255)
    generator.flow_from_directory(tree)  # Keras 2 counts hidden folders as classes
    assert capsys.readouterr().out == "Found 5 images belonging to 3 classes.\n"
    shutil.rmtree(tree / ".hidden")
    it = generator.flow_from_directory(tree, target_size=(3, 4), batch_size=2, shuffle=False)
    # Keras 2's list of formats has no GIF.
    assert capsys.readouterr().out == "Found 4 images belonging to 2 classes.\n"
    assert it.class_indices == {"cats": 0, "dogs": 1}
    assert it.filenames == ["cats/c1.png", "cats/c2.JPG", "cats/deeper/c3.bmp", "dogs/d2.png"]
    np.testing.assert_array_equal(it.classes, [0, 0, 0, 1])
    assert it.samples == 4 and len(it) == 2
    images, labels = it[1]
    assert images.shape == (2, 3, 4, 3)
    np.testing.assert_allclose(images[0], CAT / 255, atol=1e-6)
    np.testing.assert_allclose(images[1], DOG / 255, atol=1e-6)
    np.testing.assert_array_equal(labels, [[1, 0], [0, 1]])
    for class_mode, expected in (("binary", [0, 1]), ("sparse", [0, 1])):
        _, labels = generator.flow_from_directory(tree, target_size=(2, 2), batch_size=2,
                                                  shuffle=False, class_mode=class_mode)[1]
        assert labels.dtype == np.float32 and labels.tolist() == expected
    images = generator.flow_from_directory(tree, target_size=(2, 2), class_mode=None,
                                           color_mode="grayscale")[0]
    assert isinstance(images, np.ndarray) and images.shape == (4, 2, 2, 1)
    split = ImageDataGenerator(validation_split=0.5)
    val = split.flow_from_directory(tree, target_size=(2, 2), subset="validation")
    train = split.flow_from_directory(tree, target_size=(2, 2), subset="training")
    assert val.filenames == ["cats/c1.png"] and train.samples == 3
    with pytest.raises(ValueError, match="class_mode"):
        generator.flow_from_directory(tree, class_mode="onehot")


def test_keras_namespace():
    assert keras.preprocessing.image.ImageDataGenerator is ImageDataGenerator
    assert keras.preprocessing.image.load_img is keras.utils.load_img
    assert keras.preprocessing.image_dataset_from_directory is \
        keras.utils.image_dataset_from_directory

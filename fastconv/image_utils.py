"""Image files <-> NumPy arrays, as Keras 3's ``keras.utils.load_img``,
``img_to_array``, ``array_to_img`` and ``save_img``.

Images are PIL images on the way in and out and ``(height, width, channels)``
arrays in between.  Pillow is an optional extra (``pip install
"fastconv[images]"``), imported on first use.
"""

import io
import os
import warnings

import numpy as np

from ._checks import as_pair, check_choice

INSTALL_HINT = 'pip install "fastconv[images]"'
CHANNELS = {"grayscale": 1, "rgb": 3, "rgba": 4}  # of each color mode
COLOR_MODES = tuple(CHANNELS)
# Resampling filters of Pillow by the names Keras's load_img accepts.
PIL_INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "hamming", "box", "lanczos")


def pil_image():
    """The ``PIL.Image`` module; ImportError naming the extra to install when
    Pillow is missing."""
    try:
        from PIL import Image
    except ImportError as err:
        raise ImportError(f"reading and writing image files needs Pillow: {INSTALL_HINT}") from err
    return Image


def pil_resample(interpolation):
    """Pillow's resampling filter called ``interpolation`` (one of
    ``PIL_INTERPOLATIONS``)."""
    check_choice(interpolation, "interpolation", PIL_INTERPOLATIONS)
    return getattr(pil_image().Resampling, interpolation.upper())


def check_data_format(data_format):
    """'channels_last' (the default, None) or 'channels_first'."""
    if data_format is None:
        return "channels_last"
    return check_choice(data_format, "data_format", ("channels_last", "channels_first"))


def open_image(path, color_mode="rgb"):
    """The image in the file ``path`` (a path or a binary file object),
    decoded and converted to ``color_mode``: 'grayscale' (8-bit 'L', or kept
    16/32-bit grayscale), 'rgb' or 'rgba'.  An animated GIF gives its first
    frame.  A file Pillow cannot decode (corrupt, truncated, not an image)
    raises ValueError naming the file."""
    Image = pil_image()
    check_choice(color_mode, "color_mode", COLOR_MODES)
    if isinstance(path, (str, bytes, os.PathLike)):
        name = os.fsdecode(path)
        with open(path, "rb") as file:
            data = io.BytesIO(file.read())
    elif hasattr(path, "read"):
        name, data = getattr(path, "name", repr(path)), path
    else:
        raise TypeError(f"path should be path-like or a binary file object, not "
                        f"{type(path).__name__}")
    try:
        img = Image.open(data)
        img.load()
    except (OSError, SyntaxError, EOFError, ValueError) as err:
        raise ValueError(f"could not decode the image file {name!r}: {err}") from err
    wanted = {"grayscale": "L", "rgb": "RGB", "rgba": "RGBA"}[color_mode]
    if img.mode != wanted and not (color_mode == "grayscale" and img.mode in ("I;16", "I")):
        img = img.convert(wanted)
    return img


def center_crop_box(width, height, target_width, target_height):
    """(left, top, right, bottom) of the largest centred window of a
    width x height image with the target's aspect ratio (Keras's
    ``smart_resize`` crop)."""
    crop_height = max(min(height, width * target_height // target_width), 1)
    crop_width = max(min(width, height * target_width // target_height), 1)
    top = (height - crop_height) // 2
    left = (width - crop_width) // 2
    return left, top, left + crop_width, top + crop_height


def load_img(path, color_mode="rgb", target_size=None, interpolation="nearest",
             keep_aspect_ratio=False):
    """Loads an image file into a PIL image (``keras.utils.load_img``).

    ``color_mode``: 'grayscale', 'rgb' or 'rgba'.  ``target_size``:
    ``(height, width)`` to resize to with ``interpolation`` ('nearest',
    'bilinear', 'bicubic', 'hamming', 'box' or 'lanczos'), or None for the
    file's size.  ``keep_aspect_ratio`` crops the centred window with the
    target's aspect ratio before resizing.
    """
    img = open_image(path, color_mode)
    if target_size is None:
        return img
    target_height, target_width = as_pair(target_size, "target_size")
    if img.size == (target_width, target_height):
        return img
    box = center_crop_box(*img.size, target_width, target_height) if keep_aspect_ratio else None
    return img.resize((target_width, target_height), pil_resample(interpolation), box=box)


def img_to_array(img, data_format=None, dtype=None):
    """A PIL image as a float32 (or ``dtype``) array of shape
    ``(height, width, channels)`` (channels first for 'channels_first');
    grayscale images get one channel."""
    data_format = check_data_format(data_format)
    x = np.asarray(img, dtype=dtype or "float32")
    if x.ndim == 2:
        x = x[:, :, None]
    elif x.ndim != 3:
        raise ValueError(f"Unsupported image shape: {x.shape}")
    return x.transpose(2, 0, 1) if data_format == "channels_first" else x


def array_to_img(x, data_format=None, scale=True, dtype=None):
    """A ``(height, width, channels)`` array (1, 3 or 4 channels) as a PIL
    image ('L', 'RGB' or 'RGBA').  ``scale`` maps the array's minimum to 0
    and maximum to 255 first; otherwise values are cast to uint8 as they are
    (a grayscale array above 255 becomes a 32-bit 'I' image, as in Keras)."""
    Image = pil_image()
    data_format = check_data_format(data_format)
    x = np.array(x, dtype=dtype or "float32")
    if x.ndim != 3:
        raise ValueError(f"Expected image array to have rank 3 (single image). "
                         f"Got array with shape: {x.shape}")
    if data_format == "channels_first":
        x = x.transpose(1, 2, 0)
    if scale:
        x -= x.min()
        if x.max() != 0:
            x /= x.max()
        x *= 255
    channels = x.shape[2]
    if channels in (3, 4):
        return Image.fromarray(x.astype("uint8"), "RGB" if channels == 3 else "RGBA")
    if channels == 1:
        if x.max() > 255:
            return Image.fromarray(x[:, :, 0].astype("int32"), "I")
        return Image.fromarray(x[:, :, 0].astype("uint8"), "L")
    raise ValueError(f"Unsupported channel number: {channels}")


def save_img(path, x, data_format=None, file_format=None, scale=True, **kwargs):
    """Saves a ``(height, width, channels)`` array as an image file.
    ``file_format`` ('png', 'jpeg', ...) defaults to the one ``path``'s
    extension names; ``scale`` as in ``array_to_img``; ``kwargs`` go to
    ``PIL.Image.save``.  RGBA saved as JPEG is converted to RGB, with a
    warning."""
    if file_format is not None and file_format.lower() == "jpg":
        file_format = "jpeg"
    img = array_to_img(x, data_format=data_format, scale=scale)
    jpeg = (file_format or "").lower() == "jpeg" or (
        file_format is None and isinstance(path, (str, os.PathLike))
        and os.fspath(path).lower().endswith((".jpg", ".jpeg")))
    if img.mode == "RGBA" and jpeg:
        warnings.warn("The JPEG format does not support RGBA images, converting to RGB.",
                      stacklevel=2)
        img = img.convert("RGB")
    img.save(path, format=file_format, **kwargs)

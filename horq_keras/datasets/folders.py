"""An image folder as training data: ``DIR/train/<class>/*`` and ``DIR/val/<class>/*``.

:func:`read_folder` checks a folder before anything is trained, so that what the run
reports is what it trains on:

- classes are the sorted names of the subfolders of ``train/``, hidden ones
  (``.ipynb_checkpoints``) left out; at least two, and ``val/`` has no other;
- images are the JPEG and PNG files (by suffix; hidden files left out) of the
  ``--limit-train`` / ``--limit-test`` subsets, **every one fully decoded** (in parallel):
  a file that does not decode (truncated, damaged, misnamed) is an error that names it,
  or, with ``skip_bad_images``, is left out with a warning naming it and listed in
  :attr:`FolderData.skipped`; a class left without a training image is an error;
- the number of channels is decided from all of them (3 when any image has colour,
  else 1), or given (``channels``); every image is then decoded to that many channels
  (grey to RGB, RGB to grey, alpha dropped).
"""

import dataclasses
import pathlib
import warnings

import numpy as np
import tensorflow as tf

from horq_keras.datasets.sources import CHANNELS

__all__ = ["IMAGE_SUFFIXES", "FolderData", "FolderError", "read_folder"]

#: File suffixes taken as images.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
#: Bad files named in an error message, at most.
_NAMED = 3


class FolderError(ValueError):
    """An unusable image folder; the message is one line."""


@dataclasses.dataclass
class FolderData:
    """The files of a checked folder: ``(paths, labels)`` per split, and what was decided."""

    classes: list
    train: tuple
    val: tuple
    channels: int
    skipped: list
    channels_note: str


def _visible(path):
    return not path.name.startswith(".")


def _class_names(split_dir):
    return sorted(p.name for p in split_dir.iterdir() if p.is_dir() and _visible(p))


def _class_files(split_dir, classes):
    paths, labels = [], []
    for label, name in enumerate(classes):
        folder = split_dir / name
        if folder.is_dir():
            for path in sorted(folder.iterdir()):
                if path.is_file() and _visible(path) and path.suffix.lower() in IMAGE_SUFFIXES:
                    paths.append(str(path))
                    labels.append(label)
    return paths, labels


def _subset(paths, labels, limit, seed):
    """The first ``limit`` of a seeded permutation (all when ``limit`` is None)."""
    order = np.random.default_rng(seed).permutation(len(paths))[:limit]
    return [paths[i] for i in order], [labels[i] for i in order]


def _without(split, bad):
    """``(paths, labels)`` of ``split`` less the paths in ``bad``."""
    bad = set(bad)
    kept = [(path, label) for path, label in zip(*split) if path not in bad]
    return [path for path, _ in kept], [label for _, label in kept]


def _decoded_channels(paths):
    """The channel count of each image of ``paths`` as stored, None where it does not
    decode (every file is decoded in full, in parallel)."""
    channels = [None] * len(paths)
    if not paths:
        return channels

    def decode(index, path):
        image = tf.io.decode_image(tf.io.read_file(path), expand_animations=False)
        return index, tf.shape(image)[-1]

    dataset = tf.data.Dataset.from_tensor_slices((np.arange(len(paths)), paths))
    dataset = dataset.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)
    for index, count in dataset.ignore_errors().as_numpy_iterator():
        channels[int(index)] = int(count)
    return channels


def _channels(decoded, given):
    """``(channels, note)``: ``given``, else 3 when any image has colour, else 1."""
    colour = sum(count >= 3 for count in decoded)
    grey = len(decoded) - colour
    found = f"{colour} colour and {grey} greyscale image(s)"
    if given is not None:
        return given, f"channels: {given} (--channels; the folder has {found})"
    if colour:
        converted = f", {grey} converted to RGB" if grey else ""
        return 3, f"channels: 3 (RGB; the folder has {found}{converted})"
    return 1, f"channels: 1 (greyscale; the folder has {found})"


def read_folder(root, *, option, limit_train=None, limit_val=None, seed=0, channels=None,
                skip_bad_images=False):
    """Check the image folder ``root`` (see the module docstring); a :class:`FolderData`.

    ``option`` names the folder in messages (``--data folder:DIR``). Raises
    :class:`FolderError`.
    """
    root = pathlib.Path(root)
    if channels is not None and channels not in CHANNELS:
        raise FolderError(f"--channels must be one of {CHANNELS}; got {channels!r}.")
    for split in ("train", "val"):
        if not (root / split).is_dir():
            raise FolderError(f"{option}: {root / split} does not exist; an image folder "
                              f"holds train/<class>/ and val/<class>/ subfolders.")
    classes = _class_names(root / "train")
    if len(classes) < 2:
        found = f"only {classes[0]!r}" if classes else "none"
        raise FolderError(f"{option}: {root / 'train'} needs at least 2 class subfolders; "
                          f"found {found}.")
    extra = sorted(set(_class_names(root / "val")) - set(classes))
    if extra:
        raise FolderError(f"{option}: val/ has classes that train/ lacks: {', '.join(extra)}.")
    files = _class_files(root / "train", classes)
    for label, name in enumerate(classes):
        if label not in files[1]:
            raise FolderError(f"{option}: class folder {root / 'train' / name} has no JPEG or "
                              f"PNG images.")
    train = _subset(*files, limit_train, seed)
    val = _subset(*_class_files(root / "val", classes), limit_val, 0)
    decoded = _decoded_channels(train[0] + val[0])
    bad = [path for path, count in zip(train[0] + val[0], decoded) if count is None]
    if bad and not skip_bad_images:
        named = ", ".join(bad[:_NAMED]) + (f" and {len(bad) - _NAMED} more"
                                          if len(bad) > _NAMED else "")
        raise FolderError(f"{option}: {len(bad)} image file(s) do not decode as JPEG or PNG: "
                          f"{named}; repair or remove them, or pass --skip-bad-images to "
                          f"train without them (each is then listed, and counted in the "
                          f"report).")
    for path in bad:
        warnings.warn(f"{option}: skipping {path}: it does not decode as a JPEG or PNG "
                      f"image (--skip-bad-images).", stacklevel=2)
    picked, train, val = train, _without(train, bad), _without(val, bad)
    lost = sorted(set(picked[1]) - set(train[1]))
    if lost:
        raise FolderError(f"{option}: class folder {root / 'train' / classes[lost[0]]} has no "
                          f"decodable image among the training images.")
    if not val[0]:
        raise FolderError(f"{option}: {root / 'val'} has no decodable JPEG or PNG image.")
    count, note = _channels([c for c in decoded if c is not None], channels)
    return FolderData(classes, tuple(train), tuple(val), count, bad, note)

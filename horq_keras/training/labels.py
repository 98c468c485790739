"""The class names of a run's data, in label order (``labels.txt`` and the report).

Label ``i`` of a TFDS dataset is its ``ClassLabel`` name ``i``; of an image folder, the
class folder that holds its images; of IDX data (MNIST), the label itself (``"0"``,
``"1"``, ...). A class of an image folder without any image in the (``--limit-*``)
subset keeps its label as its name.
"""

import pathlib

__all__ = ["class_names", "labels_text"]


def class_names(data):
    """The names of the classes of ``data`` (a ``training.data.DataInfo``), in label order."""
    if data.tfds_builder is not None:
        return list(data.tfds_builder.info.features["label"].names)
    names = [str(label) for label in range(data.num_classes)]
    for paths, labels in data.files or ():
        for path, label in zip(paths, labels):
            names[label] = pathlib.Path(path).parent.name
    return names


def labels_text(names):
    """``labels.txt``: one class name a line, in label order (TFLite's label-file format)."""
    return "".join(f"{name}\n" for name in names)

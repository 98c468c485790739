"""Class labels inside a ``.tflite``, as TFLite model metadata with an associated label file.

This is where TFLite's conventions put labels (what TFLite Support's metadata extractor
and Android Studio's ML model binding read): the model's ``metadata`` gets an entry
``TFLITE_METADATA`` whose buffer is a ``ModelMetadata`` flatbuffer (tflite-support's
``metadata_schema.fbs``, file identifier ``M001``) with one subgraph whose output tensor
has the associated file ``labels.txt`` of type ``TENSOR_AXIS_LABELS``; the file itself
is packed into a zip archive appended to the flatbuffer, as tflite-support's
``MetadataPopulator`` does. tflite-support is not needed: the table is written with the
``flatbuffers`` package from the schema's field numbers (:data:`_FIELDS`), and the model
with TFLite's own schema (:mod:`horq_keras.tflite.graph`).
"""

import io
import zipfile

import flatbuffers
import numpy as np

from horq_keras.tflite.graph import _schema

__all__ = ["LABEL_FILE", "METADATA_NAME", "embed_labels", "labels_text", "read_labels"]

#: Name of the metadata entry and of the label file inside the model.
METADATA_NAME, LABEL_FILE = "TFLITE_METADATA", "labels.txt"
_IDENTIFIER = b"M001"
_TENSOR_AXIS_LABELS = 2  # AssociatedFileType
_MIN_PARSER_VERSION = "1.0.0"  # the schema version that has everything written here
#: Field numbers of metadata_schema.fbs (schema 1.1.0) used here, per table.
_FIELDS = {
    "AssociatedFile": {"name": 0, "description": 1, "type": 2},
    "TensorMetadata": {"name": 0, "description": 1, "associated_files": 6},
    "SubGraphMetadata": {"name": 0, "input_tensor_metadata": 2, "output_tensor_metadata": 3},
    "ModelMetadata": {"name": 0, "description": 1, "subgraph_metadata": 3,
                      "min_parser_version": 7},
}


def labels_text(names):
    """The label file: one class name a line, in class-id order (TFLite's format)."""
    return "".join(f"{name}\n" for name in names)


def _table(builder, kind, **values):
    """A table of ``kind``: strings and ``int`` bytes by field name, offsets as lists."""
    fields = _FIELDS[kind]
    offsets = {}
    for name, value in values.items():
        if isinstance(value, str):
            offsets[name] = builder.CreateString(value)
        elif isinstance(value, list):
            builder.StartVector(4, len(value), 4)
            for offset in reversed(value):
                builder.PrependUOffsetTRelative(offset)
            offsets[name] = builder.EndVector()
    builder.StartObject(max(fields.values()) + 1)
    for name, value in values.items():
        if name in offsets:
            builder.PrependUOffsetTRelativeSlot(fields[name], offsets[name], 0)
        else:
            builder.PrependInt8Slot(fields[name], value, 0)
    return builder.EndObject()


def _model_metadata(name, inputs):
    """The ``ModelMetadata`` flatbuffer of a one-output classifier with ``inputs`` inputs."""
    builder = flatbuffers.Builder(1024)
    labels = _table(builder, "AssociatedFile", name=LABEL_FILE, type=_TENSOR_AXIS_LABELS,
                    description="the class of each output, in output order")
    output = _table(builder, "TensorMetadata", name="probabilities",
                    description="the probability of each class", associated_files=[labels])
    input_tensors = [_table(builder, "TensorMetadata", name=f"input_{index}")
                     for index in range(inputs)]
    subgraph = _table(builder, "SubGraphMetadata", name=name,
                      input_tensor_metadata=input_tensors, output_tensor_metadata=[output])
    root = _table(builder, "ModelMetadata", name=name, subgraph_metadata=[subgraph],
                  description="a classifier trained by horq-keras",
                  min_parser_version=_MIN_PARSER_VERSION)
    builder.Finish(root, file_identifier=_IDENTIFIER)
    return bytes(builder.Output())


def embed_labels(flatbuffer, names, model_name="model"):
    """``flatbuffer`` with ``names`` (index order) as its label file and metadata; any
    label metadata it had is replaced."""
    schema = _schema()
    model = schema.ModelT.InitFromPackedBuf(bytearray(flatbuffer), 0)
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(_model_metadata(model_name, len(model.subgraphs[0].inputs)),
                                np.uint8)
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name, entry.buffer = METADATA_NAME, len(model.buffers) - 1
    model.metadata = [m for m in model.metadata or [] if m.name != METADATA_NAME.encode()
                      and m.name != METADATA_NAME] + [entry]
    builder = flatbuffers.Builder(len(flatbuffer) + 4096)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    packed = io.BytesIO(bytes(builder.Output()))
    packed.seek(0, io.SEEK_END)
    with zipfile.ZipFile(packed, "a") as archive:
        archive.writestr(LABEL_FILE, labels_text(names))
    return packed.getvalue()


def read_labels(flatbuffer):
    """The class names packed into ``flatbuffer`` (None without a label file) and whether
    its metadata entry is present."""
    schema = _schema()
    model = schema.Model.GetRootAs(flatbuffer, 0)
    names = {model.Metadata(i).Name().decode() for i in range(model.MetadataLength())}
    try:
        with zipfile.ZipFile(io.BytesIO(flatbuffer)) as archive:
            text = archive.read(LABEL_FILE).decode()
    except (zipfile.BadZipFile, KeyError):
        return None, METADATA_NAME in names
    return text.splitlines(), METADATA_NAME in names

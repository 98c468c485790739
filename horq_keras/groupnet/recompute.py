"""Recomputation of Group-Net's branches in the backward pass (gradient checkpointing).

A group keeps ``K`` branches ``H_i`` (eq. 3, 5, 6); back-propagation normally keeps every
layer output of every branch, so the activation memory of a step grows with ``K``.
:class:`RecomputedBranchesModel` is the same functional model (same layers, names,
weights, configuration of each layer, the same graph in inference and after conversion)
whose training forward pass runs each named branch under :func:`tf.recompute_grad`
(Chen et al., "Training deep nets with sublinear memory cost", 2016): the forward pass
keeps only the branch's input and output, and the backward pass runs the branch again to
get the gradients of its layers, one branch at a time.

Keras' batch normalization updates its moving mean and variance as a side effect of a
training call (``Layer.add_update``); the recomputation masks ``add_update`` on the
branch's layers, so the statistics are updated once per step, by the forward pass.

The model executes its functional graph itself in training (:func:`_run_nodes`, the
node order of Keras' ``Functional._run_internal_graph``, whose node attributes of tf-keras
2.16 it reads), replacing the nodes of each branch by one recomputed call; in inference
(``training`` not ``True``) it is Keras' own functional call. A branch is run twice with
the same inputs, so it must be deterministic (the Group-Net branches hold no dropout).
"""

import collections
import contextlib

import tensorflow as tf

from horq_keras.serialization import register

__all__ = [
    "RecomputedBranchesModel",
    "branch_layer_names",
    "check_recompute_branches",
    "kept_activations",
]

#: The configuration key that holds the recomputed branches' name prefixes.
CONFIG_KEY = "recomputed_branches"


def check_recompute_branches(value):
    """Validate the builders' ``recompute_branches``: ``True`` or ``False``."""
    if not isinstance(value, bool):
        raise TypeError(f"`recompute_branches` must be True or False; got {value!r}.")
    return value


def branch_layer_names(names, prefix):
    """The names of ``names`` that belong to the branch ``prefix``: ``prefix`` itself
    and every ``prefix_...`` (the layer names :func:`~horq_keras.groupnet.branches.
    binary_group` gives a branch)."""
    return [name for name in names if name == prefix or name.startswith(prefix + "_")]


def _run_nodes(nodes, values, training):
    """Call the layer of each of ``nodes`` (in order) on the tensors ``values`` holds
    for its inputs (``{id(KerasTensor): tensor}``), storing its outputs there."""
    for node in nodes:
        counts = collections.Counter(node.flat_input_ids)
        args, kwargs = node.map_arguments(
            {key: [values[key]] * count for key, count in counts.items()})
        outputs = node.layer(*args, **kwargs, training=training)
        values.update(zip(node.flat_output_ids, tf.nest.flatten(outputs)))


@contextlib.contextmanager
def _updates_masked(layers):
    """Inside: ``add_update`` of ``layers`` does nothing (batch normalization's moving
    statistics are not updated again when a branch is recomputed)."""
    for layer in layers:
        object.__setattr__(layer, "add_update", lambda updates: None)
    try:
        yield
    finally:
        for layer in layers:
            object.__delattr__(layer, "add_update")


class _Branch:
    """One branch of the graph: its nodes in execution order, its input and output."""

    def __init__(self, prefix, nodes):
        inside = {key for node in nodes for key in node.flat_output_ids}
        inputs = {key for node in nodes for key in node.flat_input_ids} - inside
        if len(inputs) != 1:
            raise ValueError(f"branch {prefix!r} must have one input tensor; it has "
                             f"{len(inputs)}.")
        self.prefix, self.nodes, self.input = prefix, nodes, inputs.pop()
        self.layers = [node.layer for node in nodes]

    def find_output(self, consumers):
        """The branch's one output: its tensor that ``consumers`` (the ids of tensors
        read outside the branch) read."""
        outputs = {key: tensor for node in self.nodes
                   for key, tensor in zip(node.flat_output_ids,
                                          tf.nest.flatten(node.output_tensors))
                   if key in consumers}
        if len(outputs) != 1:
            raise ValueError(f"branch {self.prefix!r} must have one output tensor; it has "
                             f"{len(outputs)}.")
        (self.output, self.output_tensor), = outputs.items()

    def __call__(self, x):
        """The branch on ``x`` in training, recomputed in the backward pass."""
        forward_done = []

        def run(x):
            values = {self.input: x}
            masked = _updates_masked(self.layers) if forward_done else contextlib.nullcontext()
            with masked:
                _run_nodes(self.nodes, values, training=True)
            return values[self.output]

        y = tf.recompute_grad(run)(x)
        forward_done.append(True)  # every later call of `run` is the recomputation
        return y


@register
class RecomputedBranchesModel(tf.keras.Model):
    """A functional model whose branches are recomputed in the backward pass of training.

    Built like ``tf.keras.Model(inputs, outputs, name=...)`` with one more keyword,
    ``recomputed_branches``: name prefixes of the branches (every layer named ``prefix``
    or ``prefix_...``; each branch must read one tensor and give one). The prefixes are
    kept in :meth:`get_config`, so ``.h5`` and SavedModel files load as this class.
    """

    def __init__(self, inputs, outputs, name=None, trainable=True, **kwargs):
        # Functional's own signature, so that Keras serializes the graph as it does for
        # a plain functional model; `recomputed_branches` comes as a keyword.
        recomputed = tuple(kwargs.pop(CONFIG_KEY, ()))
        super().__init__(inputs, outputs, name=name, trainable=trainable, **kwargs)
        object.__setattr__(self, "_recomputed", recomputed)
        object.__setattr__(self, "_plan", None)
        self._plan_graph()  # validates the prefixes now rather than at the first step

    @property
    def recomputed_branches(self):
        """The name prefixes of the recomputed branches."""
        return self._recomputed

    def _plan_graph(self):
        """``[(node or _Branch)]`` in execution order: the nodes outside branches and
        one :class:`_Branch` where each branch starts."""
        if self._plan is not None:
            return self._plan
        nodes = [node for depth in sorted(self._nodes_by_depth, reverse=True)
                 for node in self._nodes_by_depth[depth] if not node.is_input]
        names = [node.layer.name for node in nodes]
        owner, branches = {}, []
        for prefix in self._recomputed:
            members = set(branch_layer_names(names, prefix))
            if not members:
                raise ValueError(f"`{CONFIG_KEY}`: no layer of {self.name!r} is named "
                                 f"{prefix!r} or {prefix + '_...'!r}.")
            branch = _Branch(prefix, [node for node in nodes if node.layer.name in members])
            branches.append(branch)
            owner.update((id(node), branch) for node in branch.nodes)
        model_outputs = {str(id(tensor)) for tensor in self.outputs}
        plan, started = [], set()
        for node in nodes:
            branch = owner.get(id(node))
            if branch is None:
                plan.append(node)
            elif id(branch) not in started:
                started.add(id(branch))
                branch.find_output(model_outputs | {
                    key for other in nodes if owner.get(id(other)) is not branch
                    for key in other.flat_input_ids})
                plan.append(branch)
        object.__setattr__(self, "_plan", plan)
        return plan

    def call(self, inputs, training=None, mask=None):
        """Keras' functional call, except in training (``training=True``) of a model of
        one input: the plan of :meth:`_plan_graph`, each branch recomputed."""
        if training is not True or mask is not None or not self._recomputed:
            return super().call(inputs, training=training, mask=mask)
        (reference,) = self.inputs
        values = {str(id(reference)): self._conform_to_reference_input(
            tf.nest.flatten(inputs)[0], ref_input=reference)}
        for step in self._plan_graph():
            if isinstance(step, _Branch):
                values[step.output] = step(values[step.input])
            else:
                _run_nodes([step], values, training=True)
        return tf.nest.pack_sequence_as(self._nested_outputs,
                                        [values[str(id(tensor))] for tensor in self.outputs])

    def get_config(self):
        return {**super().get_config(), CONFIG_KEY: list(self._recomputed)}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        prefixes = config.pop(CONFIG_KEY, ())
        model = super().from_config(config, custom_objects)
        object.__setattr__(model, "_recomputed", tuple(prefixes))
        object.__setattr__(model, "_plan", None)
        model._plan_graph()
        return model


def _elements(tensor):
    """Elements of one image's share of a Keras tensor (its shape without the batch)."""
    count = 1
    for size in tensor.shape[1:]:
        count *= int(size)
    return count


def kept_activations(model):
    """Elements per image of the layer outputs a training step of ``model`` holds at once.

    Every layer output of a model without recomputed branches (all are kept for
    back-propagation). With recomputed branches: the outputs outside the branches and
    each branch's output (kept by the forward pass), plus every output of the largest
    branch, which the backward pass recomputes while the others are not held.
    """
    if not isinstance(model, RecomputedBranchesModel) or not model.recomputed_branches:
        return sum(_elements(tensor) for layer in model.layers
                   for tensor in tf.nest.flatten(layer.output))
    plan = model._plan_graph()
    outside = sum(_elements(tensor) for tensor in model.inputs)
    outside += sum(_elements(tensor) for step in plan if not isinstance(step, _Branch)
                   for tensor in tf.nest.flatten(step.output_tensors))
    branches = [step for step in plan if isinstance(step, _Branch)]
    largest = max(sum(_elements(tensor) for node in branch.nodes
                      for tensor in tf.nest.flatten(node.output_tensors))
                  for branch in branches)
    outputs = sum(_elements(branch.output_tensor) for branch in branches)
    return outside + outputs + largest

"""Flax model zoo for jaxgreen's benchmarks: each model ships an optax train step.

Every module exposes ``make_train_step(config, batch_size)`` returning
``(train_step, example_args)``, where ``example_args`` are ``jax.ShapeDtypeStruct``s
(parameters from ``jax.eval_shape(model.init, ...)``), so counting a step allocates
nothing. Import as ``benchmarks.zoo.gpt2`` from the repository root, or as
``zoo.gpt2`` with ``benchmarks/`` on ``sys.path``.
"""

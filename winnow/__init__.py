"""winnow: curate raw text into a clean pretraining corpus on Apache Beam, and pretrain
BERT/ALBERT encoders on it with PyTorch.

One import name over the project's folders (see pyproject.toml's package-dir):
``winnow.filters`` (filters/, the text logic), ``winnow.pipeline`` (pipeline/, Beam wiring),
``winnow.schemas`` (schemas/, formats shared by curation and training) and ``winnow.trainer``
(trainer/, PyTorch). ``winnow.cli`` is the command's front door.
"""

"""Evaluation of a pretrained encoder, top-1 in percent.

- ``features``: the inputs (normalisation, resizing) and one forward pass for backbone and projector features
- ``knn``: weighted kNN on cosine similarity
- ``linear``: the linear probe on frozen features
- ``finetune``: end-to-end fine-tuning with light augmentation
- ``evaluate``: a run's whole evaluation (``evaluate_encoder``) and the cached random-init kNN
"""

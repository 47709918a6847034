"""Explaining a classifier: nearest-neighbour local examples and counterexamples of its mistakes."""
from .neighbours import (TAGS, Explanations, confusion_groups, embed, explain_mistakes, knn_of_class,
                         local_examples, plot_explanations, rank_mistakes, tag_mistakes)

__all__ = ["TAGS", "Explanations", "confusion_groups", "embed", "explain_mistakes", "knn_of_class",
           "local_examples", "plot_explanations", "rank_mistakes", "tag_mistakes"]

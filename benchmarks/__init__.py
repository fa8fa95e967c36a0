"""`make bench`: the pipeline measured beside its ceiling and the usual alternatives."""

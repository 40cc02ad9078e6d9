"""Loading models, sliding-window prediction, memory estimates, agreement maps."""

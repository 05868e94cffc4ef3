"""evaltui: label LLM outputs in the terminal, calibrate raters and judges, ship rubrics."""

__version__ = "0.1.0"

"""LLM judges: prompt rendering, the litellm runner, verdict parsing."""

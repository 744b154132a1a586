"""Integrations with client libraries, each in its own module and imported on demand.

- :mod:`loopwise.integrations.openai`: the OpenAI Python client (``pip install 'loopwise[openai]'``).
- :mod:`loopwise.integrations.transformers`: Hugging Face ``transformers`` text-generation
  pipelines (``pip install 'loopwise[transformers]'``).
"""

__all__: list[str] = []

"""bench: which vLLM server configuration is fastest for my workload, and did it get worse?"""

__version__ = "0.1.0"

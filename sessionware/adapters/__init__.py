"""Adapters that feed provider SDK calls into the session core.

Each provider's SDK is imported only inside its own adapter module.
"""

"""The hook the proxy's config names (``callbacks: sessionware_hook.hook``).

LiteLLM loads this file from the config's folder in every worker. The store and an
optional fixed session come from ``SESSIONWARE_STORE`` and ``SESSIONWARE_SESSION``;
``SESSIONWARE_MODE=managed`` and ``SESSIONWARE_BUDGET`` make it the managed hook.
"""

from sessionware.adapters.litellm.proxy import ProxyHook

hook = ProxyHook.from_env()

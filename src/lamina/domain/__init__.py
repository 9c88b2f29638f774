"""The domain: frozen values, names and ARNs, lifecycles and AWS's messages.

Everything else depends on this package and it depends on nothing of Lamina's but
`lamina.errors`: `control`, `store`, `invoke` and `api` all speak in these values.
"""

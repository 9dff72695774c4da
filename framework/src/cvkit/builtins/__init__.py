"""cvkit's built-in plugins: one module per feature, each with its own ``@hookimpl``,
loaded by name (see :data:`cvkit.registry.loading.DEFAULT_PLUGINS`) like any plugin."""

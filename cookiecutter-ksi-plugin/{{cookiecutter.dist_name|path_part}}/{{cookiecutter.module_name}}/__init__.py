"""{{ cookiecutter.plugin_name }}: a KSI plugin (``plugin.py`` holds the plugin ksi-host loads)."""

__version__ = "0.1.0"

__all__ = ["__version__"]

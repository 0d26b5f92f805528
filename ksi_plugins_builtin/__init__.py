"""The plugins that ship with ksi-host; discovered like any other plugin, at lowest precedence."""

"""Built-in plugins, registered before any entry point, exactly like third-party ones."""

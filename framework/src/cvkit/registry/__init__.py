"""The registry layer: kinds of component, parameter introspection, validation of
recipe values, the registry itself and plugin loading."""

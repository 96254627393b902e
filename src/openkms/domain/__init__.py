"""Pure rules and values of the key service: key specs, key states, aliases, tags, policies. No I/O."""

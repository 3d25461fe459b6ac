"""Ray Serve applications (thin: parse, call an analyzer, shape the response) and config.yaml."""
